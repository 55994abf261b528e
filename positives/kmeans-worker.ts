/**
 * Spherical k-means off the calling thread: `clusterInWorker` runs `sphericalKMeans` in a
 * `worker_threads` Worker, so a clustering of the embedding bank (seconds for 10⁵–10⁶ rows)
 * never stalls the trainer's event loop. The result is the in-thread one, bit for bit: same
 * code, same seed.
 *
 * One short-lived worker per call (starting one costs ~30 ms, nothing next to a clustering),
 * terminated once it answers, fails, or the call is aborted, so no process is kept alive by it.
 * The rows travel by transfer, not by copy: `clusterInWorker` copies them first (so the bank can
 * keep writing) unless told they may be handed over.
 *
 * This file is also the worker's entry: loaded in a worker with the job in `workerData`, it runs
 * the job and posts the result back.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { workerScript } from '../core/worker-script.js';
import { sphericalKMeans, type KMeansOptions, type KMeansResult } from './kmeans.js';

/** Marks a worker started by `clusterInWorker`, so this module runs a job only in its own workers. */
const JOB_KIND = 'densestream/sphericalKMeans';

interface Job {
  kind: typeof JOB_KIND;
  rows: Float32Array;
  dims: number;
  options: KMeansOptions;
}

type Reply = { ok: true; result: KMeansResult } | { ok: false; message: string };

export interface ClusterInWorkerOptions {
  /**
   * `true`: hand `rows` over to the worker without a copy; their buffer is detached (length 0)
   * here afterwards. For rows nobody else writes, e.g. `bank.copyRows()`. Default `false`: copy.
   */
  transfer?: boolean;
  /** Aborting terminates the worker and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Whether `rows` spans its whole, transferable buffer, so it can move without a copy. */
function ownsBuffer(rows: Float32Array): boolean {
  return rows.buffer instanceof ArrayBuffer && rows.byteOffset === 0 && rows.byteLength === rows.buffer.byteLength;
}

/**
 * `sphericalKMeans(rows, dims, options)` on a worker thread.
 *
 * @example
 * const { rows, ids } = bank.snapshot();
 * const { assignments } = await clusterInWorker(rows, bank.dims, { k: 1000, seed: epoch }, { transfer: true });
 * // ids[i] is in cluster assignments[i]
 * @param rows [N, dims] unit rows; copied unless `run.transfer`.
 * @see sphericalKMeans for the options and the result.
 */
export function clusterInWorker(
  rows: Float32Array,
  dims: number,
  options: KMeansOptions,
  run: ClusterInWorkerOptions = {},
): Promise<KMeansResult> {
  const { signal } = run;
  if (signal?.aborted) return Promise.reject(signal.reason);
  let script: URL;
  try {
    script = workerScript(import.meta.url, 'dist/positives/kmeans-worker.js', 'clusterInWorker');
  } catch (err) {
    return Promise.reject(err);
  }
  const moved = run.transfer && ownsBuffer(rows) ? rows : rows.slice();
  const job: Job = { kind: JOB_KIND, rows: moved, dims, options };
  const worker = new Worker(script, { workerData: job, transferList: [moved.buffer as ArrayBuffer] });
  return new Promise<KMeansResult>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      outcome();
    };
    const onAbort = (): void => settle(() => reject(signal?.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (reply: Reply) => settle(() => (reply.ok ? resolve(reply.result) : reject(new Error(reply.message)))));
    worker.once('error', (err: Error) => settle(() => reject(err)));
    worker.once('exit', (code: number) =>
      settle(() => reject(new Error(`clusterInWorker: the worker exited with code ${code} before answering`))),
    );
  });
}

function runJob(job: Job): void {
  let reply: Reply;
  let transfer: ArrayBuffer[] = [];
  try {
    const result = sphericalKMeans(job.rows, job.dims, job.options);
    reply = { ok: true, result };
    transfer = [result.centroids.buffer as ArrayBuffer, result.assignments.buffer as ArrayBuffer];
  } catch (err) {
    reply = { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  parentPort?.postMessage(reply, transfer);
}

if (!isMainThread && (workerData as Partial<Job> | null)?.kind === JOB_KIND) runJob(workerData as Job);
