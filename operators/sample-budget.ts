/**
 * The bound on samples alive between a source and its consumer (DESIGN.md, "Backpressure").
 *
 * RxJS pushes; a fast source through `mergeMap` buffers without limit. densestream's sources
 * instead take a permit from a `SampleBudget` before reading each sample, and a permit comes
 * back only when the sample leaves the pipeline: dropped as bad input, or consumed (the
 * trainer releases a batch's samples after its step). However fast the source and however
 * slow the consumer, at most `capacity` samples exist in between.
 */
export class SampleBudget {
  private available: number;
  private readonly waiting: Array<() => void> = [];
  private peakInFlight = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new Error(`budget: expected a positive integer of samples in flight, got "${capacity}"`);
    }
    this.available = capacity;
  }

  /** Samples now between source and consumer. */
  get inFlight(): number {
    return this.capacity - this.available;
  }

  /** The most samples ever in flight at once. */
  get peak(): number {
    return this.peakInFlight;
  }

  /** Resolves when a permit is free, and takes it. */
  acquire(): Promise<void> {
    if (this.available > 0) {
      this.take();
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.waiting.push(() => {
        this.take();
        resolve();
      }),
    );
  }

  /** Returns `n` permits: samples that left the pipeline. */
  release(n = 1): void {
    if (n > this.inFlight) throw new Error(`budget: released ${n} samples but only ${this.inFlight} are in flight`);
    this.available += n;
    while (this.available > 0 && this.waiting.length > 0) this.waiting.shift()?.();
  }

  private take(): void {
    this.available -= 1;
    this.peakInFlight = Math.max(this.peakInFlight, this.inFlight);
  }
}
