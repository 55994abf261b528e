/**
 * Runs one wasm kernel across threads, synchronously, as tfjs kernels must be.
 *
 * Worker threads instantiate the same module on the same shared memory and sleep in
 * `Atomics.wait` on a control word. A call stores its arguments, wakes them, runs part 0 on the
 * calling thread and waits until every part is done. No messages, no event loop: a call costs
 * two futex wake-ups, microseconds against kernels of milliseconds.
 */
import { Worker } from 'node:worker_threads';
import { webAssembly, type WasmInstance, type WasmMemory, type WasmModule } from './webassembly.js';

/** Control words: generation, parts still running, export index, failure flag, then arguments. */
const GEN = 0;
const PENDING = 1;
const FN = 2;
const FAILED = 3;
const ARGS = 4;
const MAX_ARGS = 16;

// Plain JS: it runs as an eval'd worker, so it needs no compiled file on disk.
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { module, memory, control, names, part, parts } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory } });
const fns = names.map((n) => instance.exports[n]);
const ctl = new Int32Array(control);
parentPort.postMessage('ready');
let seen = 0;
for (;;) {
  Atomics.wait(ctl, ${GEN}, seen);
  seen = Atomics.load(ctl, ${GEN});
  if (seen < 0) break;
  try {
    const args = Array.from(ctl.subarray(${ARGS}, ${ARGS} + fns[ctl[${FN}]].length - 2));
    fns[ctl[${FN}]](...args, part, parts);
  } catch (err) {
    Atomics.store(ctl, ${FAILED}, 1);
  }
  if (Atomics.sub(ctl, ${PENDING}, 1) === 1) Atomics.notify(ctl, ${PENDING});
}
`;

type KernelExport = (...args: number[]) => void;

export class KernelPool {
  private readonly ctl: Int32Array;
  private readonly fns: KernelExport[];
  private readonly workers: Worker[] = [];

  private constructor(
    private readonly names: readonly string[],
    instance: WasmInstance,
    readonly parts: number,
  ) {
    this.ctl = new Int32Array(new SharedArrayBuffer(4 * (ARGS + MAX_ARGS)));
    this.fns = names.map((n) => {
      const fn = instance.exports[n];
      if (typeof fn !== 'function') throw new Error(`wasm kernels: the module has no export "${n}"`);
      return fn as KernelExport;
    });
  }

  /**
   * Instantiates `module` on `memory` here and in `parts − 1` workers (memory must be shared
   * when parts > 1). Resolves once every worker is ready to take work.
   */
  static async create(module: WasmModule, memory: WasmMemory, names: readonly string[], parts: number): Promise<KernelPool> {
    if (parts > 1 && !(memory.buffer instanceof SharedArrayBuffer)) {
      throw new Error('wasm kernels: more than one part needs a shared memory');
    }
    const instance = await webAssembly.instantiate(module, { env: { memory } });
    const pool = new KernelPool(names, instance, parts);
    await Promise.all(
      Array.from({ length: parts - 1 }, (_, i) => {
        const worker = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { module, memory, control: pool.ctl.buffer, names, part: i + 1, parts },
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
    if (!parallel) {
      fn(...args, 0, 1);
      return;
    }
    const others = this.parts - 1;
    if (others > 0) {
      this.ctl.set(args, ARGS);
      this.ctl[FN] = index;
      this.ctl[FAILED] = 0;
      Atomics.store(this.ctl, PENDING, others);
      Atomics.add(this.ctl, GEN, 1);
      Atomics.notify(this.ctl, GEN);
    }
    try {
      fn(...args, 0, this.parts);
    } finally {
      // Even when part 0 throws, the others are writing into tensors: wait them out.
      for (let left = Atomics.load(this.ctl, PENDING); left > 0; left = Atomics.load(this.ctl, PENDING)) {
        Atomics.wait(this.ctl, PENDING, left);
      }
    }
    if (this.ctl[FAILED] !== 0) throw new Error(`wasm kernels: ${name} failed in a worker thread`);
  }

  /** Stops the workers (tests; a process exits without it). */
  async close(): Promise<void> {
    Atomics.store(this.ctl, GEN, -1);
    Atomics.notify(this.ctl, GEN);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
