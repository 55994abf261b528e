/**
 * Runs one wasm kernel across threads, synchronously, as tfjs kernels must be.
 *
 * Worker threads instantiate the same module on the same shared memory and sleep in
 * `Atomics.wait` on a control word. A call stores its arguments and wakes them; then every
 * thread, the caller included, claims the kernel's parts one at a time from that word and runs
 * them, and the caller returns once no part is left and none is running. No messages, no event
 * loop.
 *
 * Parts are claimed, not assigned: a futex wake-up on this 2-core VM took 0.1–1.5 ms (measured
 * per kernel, from the call to the worker's first instruction), as long as a batch-norm pass
 * itself, and the caller used to wait it out after its own half. Now a caller that finds the
 * other part unclaimed runs it itself, and a worker that wakes late finds nothing left and
 * sleeps again. Which thread runs a part changes no value: a kernel computes part p of n the
 * same way on any thread, with part p's scratch.
 *
 * Nor does a thread go to sleep at once: a worker that finds no part left, and a caller whose
 * last part is still running elsewhere, first watch the control word for the pool's spin (0.2 ms
 * by default), as OpenMP's and pthreadpool's threads do. A step calls ~180 kernels, most of them
 * 0.1–1 ms long with tens of microseconds of tfjs between them, so a worker that spins through
 * the gap starts the next call's part at once. The default recipe ran 1.08× faster so (518.8 →
 * 559.0 images/s, docs/performance.md), where a sleeping worker had cost the caller 2.6 s of
 * waiting in 40 s (74 µs a call of batch norm's, whose parts are fixed halves).
 */
import { Worker } from 'node:worker_threads';
import { ConfigError } from '../../core/config-error.js';
import { webAssembly, type WasmInstance, type WasmMemory, type WasmModule } from '../../core/webassembly.js';

/**
 * Control words. CLAIM packs the call's generation (bits 16–31), the workers running a part of
 * it (bits 8–15) and the next unclaimed part (bits 0–7), so a claim is one compare-and-swap: a
 * worker claims a part and counts itself running in the same step, and the caller, which waits
 * for that count to reach 0, never rewrites the arguments under a worker that has claimed.
 * Then the count of the workers' sleeps (diagnostics and tests), the export index, a failure
 * flag, the spin in microseconds (a word, so it can change between calls), and the arguments.
 */
const CLAIM = 0;
const SLEEPS = 1;
const FN = 2;
const FAILED = 3;
const SPIN_US = 4;
const ARGS = 5;
const MAX_ARGS = 16;
/** The most parts a call splits into: the claim word's 8 bits of part index. */
const MAX_PARTS = 255;
const RUNNING = 1 << 8;
/** The claim word before the first call: no part to claim (part 255 of at most 255). */
const NO_CALL = 0xff;
const GENERATION = 1 << 16;
/** Microseconds a thread watches the control word before it sleeps (DENSESTREAM_POOL_SPIN_US overrides). */
export const DEFAULT_SPIN_US = 200;
/** The longest spin a pool accepts: a thread that watches longer holds a core that another process could use. */
export const MAX_SPIN_US = 100_000;

/**
 * How long the kernels' threads watch for the next call before sleeping, in microseconds:
 * DENSESTREAM_POOL_SPIN_US (0 to sleep at once, as before 2026-12-05) or the default.
 */
export function poolSpinUs(env = process.env['DENSESTREAM_POOL_SPIN_US']): number {
  if (env === undefined || env === '') return DEFAULT_SPIN_US;
  const us = /^\d+$/.test(env) ? Number(env) : Number.NaN;
  if (!(us <= MAX_SPIN_US)) throw new ConfigError(`DENSESTREAM_POOL_SPIN_US: expected whole microseconds, 0–${MAX_SPIN_US}, got "${env}"`);
  return us;
}

function checkSpin(us: number): void {
  if (!Number.isInteger(us) || us < 0 || us > MAX_SPIN_US)
    throw new Error(`wasm kernels: the spin must be whole microseconds, 0–${MAX_SPIN_US}, got ${us}`);
}

// Plain JS: it runs as an eval'd worker, so it needs no compiled file on disk.
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { module, memory, control, names, parts } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory } });
const fns = names.map((n) => instance.exports[n]);
const ctl = new Int32Array(control);
parentPort.postMessage('ready');
for (;;) {
  const word = Atomics.load(ctl, ${CLAIM});
  if (word === -1) break;
  const next = word & 0xff;
  if (next >= parts) {
    // Watch the word a while (the next call is usually tens of microseconds away), then sleep
    // until a call (or close) rewrites it. The clock is read every 256 looks.
    const spinUs = Atomics.load(ctl, ${SPIN_US});
    const end = performance.now() + spinUs / 1000;
    for (let look = 1; spinUs > 0 && Atomics.load(ctl, ${CLAIM}) === word; look++)
      if ((look & 255) === 0 && performance.now() >= end) break;
    if (Atomics.load(ctl, ${CLAIM}) === word) {
      Atomics.add(ctl, ${SLEEPS}, 1);
      Atomics.wait(ctl, ${CLAIM}, word);
    }
    continue;
  }
  // claim part next and count this worker as running it, in one step
  if (Atomics.compareExchange(ctl, ${CLAIM}, word, word + 1 + ${RUNNING}) !== word) continue;
  try {
    const fn = fns[ctl[${FN}]];
    fn(...Array.from(ctl.subarray(${ARGS}, ${ARGS} + fn.length - 2)), next, parts);
  } catch (err) {
    Atomics.store(ctl, ${FAILED}, 1);
  }
  Atomics.sub(ctl, ${CLAIM}, ${RUNNING});
  Atomics.notify(ctl, ${CLAIM}); // the caller may be waiting for the running count to reach 0
}
`;

type KernelExport = (...args: number[]) => void;

export class KernelPool {
  private readonly ctl: Int32Array;
  private readonly fns: KernelExport[];
  private readonly workers: Worker[] = [];
  /** The last call's generation (15 bits, so the claim word stays positive and never −1, the close). */
  private generation = 0;

  private constructor(
    private readonly names: readonly string[],
    instance: WasmInstance,
    readonly parts: number,
    spinUs: number,
  ) {
    this.ctl = new Int32Array(new SharedArrayBuffer(4 * (ARGS + MAX_ARGS)));
    this.ctl[CLAIM] = NO_CALL;
    this.spinUs = spinUs;
    this.fns = names.map((n) => {
      const fn = instance.exports[n];
      if (typeof fn !== 'function') throw new Error(`wasm kernels: the module has no export "${n}"`);
      return fn as KernelExport;
    });
  }

  /**
   * Instantiates `module` on `memory` here and in `parts − 1` workers (memory must be shared
   * when parts > 1), whose threads watch for work `spinUs` microseconds before they sleep.
   * Resolves once every worker is ready to take work.
   */
  static async create(
    module: WasmModule,
    memory: WasmMemory,
    names: readonly string[],
    parts: number,
    spinUs = DEFAULT_SPIN_US,
  ): Promise<KernelPool> {
    if (!Number.isInteger(parts) || parts < 1 || parts > MAX_PARTS)
      throw new Error(`wasm kernels: parts must be an integer in [1, ${MAX_PARTS}], got ${parts}`);
    checkSpin(spinUs);
    if (parts > 1 && !(memory.buffer instanceof SharedArrayBuffer)) {
      throw new Error('wasm kernels: more than one part needs a shared memory');
    }
    const instance = await webAssembly.instantiate(module, { env: { memory } });
    const pool = new KernelPool(names, instance, parts, spinUs);
    await Promise.all(
      Array.from({ length: parts - 1 }, () => {
        const worker = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { module, memory, control: pool.ctl.buffer, names, parts },
        });
        pool.workers.push(worker);
        return new Promise<void>((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
        });
      }),
    );
    // Idle workers sleep forever; they must not keep the process alive.
    for (const w of pool.workers) w.unref();
    return pool;
  }

  /**
   * Runs export `name` with `args` (int32 each; pointers are offsets) split into `parts`, or in
   * one part on this thread when `parallel` is false (work too small to be worth a wake-up).
   */
  run(name: string, args: readonly number[], parallel = true): void {
    const index = this.names.indexOf(name);
    const fn = this.fns[index];
    if (fn === undefined) throw new Error(`wasm kernels: no kernel "${name}"`);
    if (args.length > MAX_ARGS) throw new Error(`wasm kernels: ${name} takes at most ${MAX_ARGS} arguments`);
    if (!parallel || this.parts === 1) {
      fn(...args, 0, 1);
      return;
    }
    const { ctl, parts } = this;
    // No worker is running a part (the last call waited for that), so the arguments are free.
    ctl.set(args, ARGS);
    ctl[FN] = index;
    ctl[FAILED] = 0;
    this.generation = (this.generation + 1) & 0x7fff;
    Atomics.store(ctl, CLAIM, this.generation * GENERATION);
    Atomics.notify(ctl, CLAIM);
    let failure: unknown;
    for (;;) {
      const word = Atomics.load(ctl, CLAIM);
      const next = word & 0xff;
      if (next >= parts) break;
      if (Atomics.compareExchange(ctl, CLAIM, word, word + 1) !== word) continue;
      // After a failure the rest are still claimed (not run): none may be left for a worker to
      // start after this call returns and the next one rewrites the arguments.
      if (failure !== undefined) continue;
      try {
        fn(...args, next, parts);
      } catch (err) {
        failure = err;
      }
    }
    // Every part is claimed: wait out the ones workers are running (they write into tensors),
    // watching first, as a worker does, since a sleeping caller wakes as late as a worker.
    const spinUs = ctl[SPIN_US] as number;
    const end = performance.now() + spinUs / 1000;
    for (let look = 1; spinUs > 0 && (Atomics.load(ctl, CLAIM) >> 8) & 0xff && ((look & 255) !== 0 || performance.now() < end); look++);
    for (let word = Atomics.load(ctl, CLAIM); (word >> 8) & 0xff; word = Atomics.load(ctl, CLAIM)) Atomics.wait(ctl, CLAIM, word);
    if (failure !== undefined) throw failure;
    if (ctl[FAILED] !== 0) throw new Error(`wasm kernels: ${name} failed in a worker thread`);
  }

  /** How many times the workers have gone to sleep since the pool was made, all workers together (none while they watch). */
  get sleeps(): number {
    return Atomics.load(this.ctl, SLEEPS);
  }

  /** Microseconds its threads watch for work before they sleep; settable between calls (a worker reads it each time it runs out of work). */
  get spinUs(): number {
    return Atomics.load(this.ctl, SPIN_US);
  }

  set spinUs(us: number) {
    checkSpin(us);
    Atomics.store(this.ctl, SPIN_US, us);
  }

  /** Stops the workers (tests; a process exits without it). */
  async close(): Promise<void> {
    Atomics.store(this.ctl, CLAIM, -1);
    Atomics.notify(this.ctl, CLAIM);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
