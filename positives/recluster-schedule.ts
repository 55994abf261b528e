/**
 * When the bank is clustered and which clustering serves which batch: arithmetic on steps only,
 * never on how fast the worker was, so the same configuration gives the same pairs.
 *
 * Round r snapshots the bank after step `r · every` and serves the batches from step
 * `r · every + lag` on (`lag` = ⌊every/2⌋, at least 1 by default: half a period for the worker to
 * finish in the shadow of training), until round r + 1 takes over. The last round starts before
 * the run's last step.
 */
export interface ReclusterScheduleOptions {
  /** Steps between clusterings, K. */
  every: number;
  /** Anchors (pairs) per batch, B/2. */
  anchorsPerStep: number;
  /** Steps the run ends after: no clustering at or after it. */
  steps: number;
  /** Steps already done (resume): clusterings start after it. */
  startStep?: number;
  /** Steps from a clustering's snapshot to the first batch it serves, 1 … every (default max(1, ⌊every/2⌋)). */
  lag?: number;
}

export class ReclusterSchedule {
  readonly every: number;
  readonly lag: number;
  readonly anchorsPerStep: number;
  readonly steps: number;
  readonly startStep: number;

  constructor(o: ReclusterScheduleOptions) {
    for (const [name, value] of [
      ['every', o.every],
      ['anchorsPerStep', o.anchorsPerStep],
      ['steps', o.steps],
    ] as const) {
      if (!Number.isInteger(value) || value < 1) throw new Error(`Reclustering ${name}: expected an integer ≥ 1, got ${value}`);
    }
    const lag = o.lag ?? Math.max(1, Math.floor(o.every / 2));
    // lag ≤ every: a clustering's batches are all trained before the one after next reuses its frozen slot.
    if (!Number.isInteger(lag) || lag < 1 || lag > o.every)
      throw new Error(`Reclustering lag: expected an integer in [1, every = ${o.every}], got ${lag}`);
    this.every = o.every;
    this.lag = lag;
    this.anchorsPerStep = o.anchorsPerStep;
    this.steps = o.steps;
    this.startStep = o.startStep ?? 0;
  }

  /** The batch (0-based) of the anchor at stream position `position` (0-based, counted over the whole run). */
  batchOf(position: number): number {
    return Math.floor(position / this.anchorsPerStep);
  }

  /** The round whose clustering serves batch `batchIndex` (0-based): the latest snapshot at least `lag` steps before it, within the run. */
  roundOf(batchIndex: number): number {
    return Math.min(Math.floor((batchIndex - this.lag) / this.every), Math.floor((this.steps - 1) / this.every));
  }

  /** Whether round `r` was started before this run's first step (so only a checkpoint can bring it). */
  beforeStart(r: number): boolean {
    return r * this.every <= this.startStep;
  }

  /** The round that starts after step `done` (1-based), or undefined: none is due then (or it is this run's first step, or at or after its end). */
  roundStartingAfter(done: number): number | undefined {
    return done % this.every !== 0 || done <= this.startStep || done >= this.steps ? undefined : done / this.every;
  }

  /** The first batch (0-based) a clustering started after step `done` serves. */
  firstServed(done: number): number {
    return done + this.lag;
  }
}
