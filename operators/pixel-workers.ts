/**
 * Per-sample pixel work off the trainer's thread. A training step holds the main thread for
 * hundreds of milliseconds (tfjs runs its kernels synchronously), and whatever per-sample work
 * runs there — a saliency map and the mask thresholded from it, 0.6 ms a scene (2 ms before their
 * loops moved to WebAssembly) — is time the
 * trainer then waits for data. `PixelWorkers` is a fixed pool of `worker_threads` that does that
 * work while a step runs, as PyTorch's DataLoader workers do; `saliencyMasks` is the operator
 * that hands samples to it and takes them back in order.
 *
 * The workers run the same functions as the main thread (`saliencyMap`, and the mask kernel
 * `maskFromAttention` runs), so maps and masks are identical, value for value, and a run is as
 * deterministic with workers as without. Pixels travel by copy (the views are cut from them
 * here); maps and masks come back by transfer. Jobs posted in one turn of the event loop travel
 * to a worker as one message, and a message's results come back as one: a message each way per
 * sample cost the main thread 3.5–6.6 ms a batch of 64, one message each way 1.1–1.2 (measured;
 * docs/performance.md, "One message per turn, not per sample"), time a step then waits for.
 *
 * Rendering the scenes on the workers too (each read a job, a batch read ahead) was tried and
 * measured: no faster (0.98–1.07× on hapicl at 32 px, noise on MoCo v2 at 64 px), and the
 * trainer waited longer, as a sample's two jobs then need two round trips through a main thread
 * that a step holds.
 *
 * This file is also the workers' entry: loaded in a worker started by `PixelWorkers`, it
 * answers jobs until the pool closes.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { workerScript } from '../core/worker-script.js';
import { map, type OperatorFunction } from 'rxjs';
import type { Pixels, Plane, Sample } from '../core/index.js';
import { isUsableMap, UNUSABLE_MAP_NOTE } from './foreground-mask.js';
import { saliencyKernels } from './saliency-kernels.js';
import { orderedMergeMap } from './ordered-merge-map.js';
import { saliencyMap, type SaliencyOptions } from './saliency.js';

/** Marks a worker started by `PixelWorkers`, so this module answers jobs only in its own workers. */
const WORKER_KIND = 'densestream/pixel-worker';

/** A saliency map to compute, and its mask. */
interface Job {
  id: number;
  pixels: Pixels;
  saliency: SaliencyOptions;
  /** Threshold a mask from the map too, dropping components under this fraction of the image; absent: the map only. */
  maskMinArea?: number;
}

type Reply = { ok: true; id: number; value: SaliencyResult } | { ok: false; id: number; message: string };

/** A saliency map, with the mask thresholded from it when asked. */
export interface SaliencyResult {
  attention: Plane<Float32Array>;
  /** Whether the map is usable (not empty, constant or non-finite); an unusable one makes the whole image the mask. */
  usable: boolean;
  mask?: Plane;
}

interface Pending {
  resolve: (value: SaliencyResult) => void;
  reject: (err: Error) => void;
}

/**
 * A fixed pool of pixel workers. Jobs go to the worker with the fewest in hand. The workers
 * keep the process alive only while they have jobs, so a forgotten `close()` does not hang an
 * exit; a worker that dies fails its jobs and every later one with its reason.
 */
export class PixelWorkers {
  readonly size: number;
  private readonly workers: Worker[];
  private readonly load: number[];
  private readonly pending = new Map<number, Pending>();
  /** Jobs not yet posted, per worker; posted together once the event loop's turn ends. */
  private readonly outbox: Job[][];
  private flushing = false;
  private nextId = 0;
  private failure: Error | undefined;
  private closed = false;

  /** @param size Workers in the pool, at least 1. */
  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`PixelWorkers: expected a positive number of workers, got ${size}`);
    this.size = size;
    const script = workerScript(import.meta.url, 'dist/operators/pixel-workers.js', 'PixelWorkers');
    this.load = new Array<number>(size).fill(0);
    this.outbox = Array.from({ length: size }, () => []);
    this.workers = Array.from({ length: size }, (_, w) => {
      const worker = new Worker(script, { workerData: { kind: WORKER_KIND } });
      worker.unref();
      worker.on('message', (replies: Reply[]) => replies.forEach((reply) => this.settle(w, reply)));
      worker.on('error', (err: Error) => this.fail(err));
      // A reply that cannot be read back would leave its job waiting for ever, with the process held up.
      worker.on('messageerror', (err: Error) => this.fail(err));
      worker.on('exit', (code: number) => {
        if (!this.closed) this.fail(new Error(`PixelWorkers: a worker exited with code ${code}`));
      });
      return worker;
    });
  }

  /**
   * Jobs a caller may keep in flight. The main thread posts jobs only between its own work, and
   * a training step holds it for hundreds of milliseconds while a worker does a job in one or
   * two, so the workers need a whole batch or more in hand before a step starts; the caller's
   * sample budget is the real bound.
   */
  get capacity(): number {
    return 256 * this.size;
  }

  /**
   * `saliencyMap(pixels, options)` on a worker, with `isUsableMap` of it and, given `maskMinArea`,
   * `maskFromAttention(map, maskMinArea)`: what `attentionMap()` then `foregroundMask()` compute.
   */
  saliency(pixels: Pixels, options: SaliencyOptions = {}, maskMinArea?: number): Promise<SaliencyResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('PixelWorkers: the pool is closed'));
    const id = this.nextId++;
    let w = 0;
    for (let i = 1; i < this.size; i++) if ((this.load[i] as number) < (this.load[w] as number)) w = i;
    if (this.pending.size === 0) for (const x of this.workers) x.ref(); // work in hand keeps the process up
    this.load[w] = (this.load[w] as number) + 1;
    const job: Job = { id, pixels, saliency: options, ...(maskMinArea === undefined ? {} : { maskMinArea }) };
    return new Promise<SaliencyResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      (this.outbox[w] as Job[]).push(job);
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Posts each worker's waiting jobs as one message. */
  private flush(): void {
    this.flushing = false;
    if (this.closed || this.failure) return; // their jobs were failed with the pool
    this.outbox.forEach((jobs, w) => {
      if (jobs.length === 0) return;
      (this.workers[w] as Worker).postMessage(jobs.splice(0));
    });
  }

  /** Stops the workers; jobs still in hand fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rejectAll(new Error('PixelWorkers: the pool closed with jobs in hand'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private settle(w: number, reply: Reply): void {
    const job = this.pending.get(reply.id);
    if (!job) return;
    this.pending.delete(reply.id);
    this.load[w] = (this.load[w] as number) - 1;
    if (this.pending.size === 0) for (const x of this.workers) x.unref();
    if (reply.ok) {
      job.resolve(reply.value);
    } else {
      job.reject(new Error(reply.message));
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.rejectAll(err);
  }

  private rejectAll(err: Error): void {
    for (const job of this.pending.values()) job.reject(err);
    this.pending.clear();
    for (const jobs of this.outbox) jobs.length = 0;
    this.load.fill(0);
    for (const x of this.workers) x.unref();
  }
}

/**
 * `attentionMap(saliencyAttention(saliency))` and, with `mask`, `foregroundMask({ method:
 * 'saliency' })` after it, computed on `workers`; samples leave in input order, with the same
 * maps and masks.
 *
 * ```
 * input:   a(pixels)  b(pixels)
 * workers: [a--] [b-]
 * output:  a(pixels, attention, mask)  b(…)
 * ```
 *
 * @param mask Threshold masks too (`minArea` as `foregroundMask`'s, default 0.01); `onFallback` hears of unusable maps.
 * @param saliency The maps' options (`saliencyAttention(saliency)`'s); default, the default saliency.
 */
export function saliencyMasks(
  workers: PixelWorkers,
  mask?: { minArea?: number; onFallback?: (id: string, reason: string) => void },
  saliency: SaliencyOptions = {},
): OperatorFunction<Sample, Sample> {
  return (samples) =>
    samples.pipe(
      orderedMergeMap(async (sample: Sample) => {
        if (!sample.pixels) throw new Error(`saliencyMasks: sample ${sample.id} is not decoded (put decode() first)`);
        return { sample, result: await workers.saliency(sample.pixels, saliency, mask ? (mask.minArea ?? 0.01) : undefined) };
      }, workers.capacity),
      // Notes in input order, here rather than as jobs finish: the skip log must not depend on the workers' timing.
      map(({ sample, result }) => {
        if (!mask) return { ...sample, attention: result.attention };
        if (!result.usable) mask.onFallback?.(sample.id, UNUSABLE_MAP_NOTE);
        if (!result.mask) throw new Error(`saliencyMasks: no mask came back for sample ${sample.id}`);
        return { ...sample, attention: result.attention, mask: result.mask };
      }),
    );
}

function runJob(job: Job): { value: SaliencyResult; transfer: ArrayBuffer[] } {
  const attention = saliencyMap(job.pixels, job.saliency);
  const { width, height } = attention;
  // The mask kernel judges the map's usability as it thresholds it: no second pass over the map.
  const masked = job.maskMinArea === undefined ? undefined : saliencyKernels().mask(attention.data, width, height, job.maskMinArea);
  const usable = masked ? masked.usable : isUsableMap(attention);
  const mask = masked ? { data: masked.data, width, height } : undefined;
  const value: SaliencyResult = { attention, usable, ...(mask ? { mask } : {}) };
  return { value, transfer: [attention.data.buffer as ArrayBuffer, ...(mask ? [mask.data.buffer as ArrayBuffer] : [])] };
}

function answerJobs(): void {
  parentPort?.on('message', (jobs: Job[]) => {
    const replies: Reply[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const job of jobs) {
      try {
        const done = runJob(job);
        replies.push({ ok: true, id: job.id, value: done.value });
        transfer.push(...done.transfer);
      } catch (err) {
        replies.push({ ok: false, id: job.id, message: err instanceof Error ? err.message : String(err) });
      }
    }
    parentPort?.postMessage(replies, transfer);
  });
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === WORKER_KIND) answerJobs();
