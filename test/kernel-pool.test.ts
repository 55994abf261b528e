/**
 * The kernel pool's protocol (models/kernels/pool.ts): every part of a call runs exactly once,
 * whichever thread claims it — the caller runs the parts no worker has claimed yet — and a part
 * that fails fails its call without leaving a part behind for the next one.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { KERNELS_SHARED_BASE64 } from '../models/kernels/kernels-wasm.js';
import { DEFAULT_SPIN_US, KernelPool, poolSpinUs } from '../models/kernels/pool.js';
import { wasmKernelSpinUs, withKernelsAsleep } from '../models/kernels/wasm-kernels.js';
import { ConfigError } from '../core/config-error.js';
import { webAssembly, type WasmMemory, type WasmModule } from '../core/webassembly.js';

interface EmscriptenModule {
  wasmMemory?: WasmMemory;
  _malloc(bytes: number): number;
  _free(at: number): void;
}

describe('KernelPool', () => {
  let module: WasmModule;
  let memory: WasmMemory;
  let wasm: EmscriptenModule;
  const pools: KernelPool[] = [];

  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
    wasm = (tf.backend() as unknown as { wasm: EmscriptenModule }).wasm;
    memory = wasm.wasmMemory as WasmMemory;
    module = await webAssembly.compile(Buffer.from(KERNELS_SHARED_BASE64, 'base64'));
  });

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  const open = async (parts: number, spinUs?: number): Promise<KernelPool> => {
    const pool = await KernelPool.create(module, memory, ['relu_values'], parts, spinUs);
    pools.push(pool);
    return pool;
  };

  it.each([
    [2, DEFAULT_SPIN_US],
    [3, DEFAULT_SPIN_US],
    [5, DEFAULT_SPIN_US],
    [2, 0],
    [3, 5000],
  ])('runs every part of every call once with %i parts, watching %i µs (relu over values, a sentinel past them)', async (parts, spinUs) => {
    const pool = await open(parts, spinUs);
    const [small, capacity] = [4099, 1 << 20];
    const [x, out] = [wasm._malloc(4 * capacity), wasm._malloc(4 * (capacity + 1))];
    try {
      let seed = parts;
      const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
      // Many short calls back to back (workers wake late, mid-call or not at all before the
      // caller has claimed everything), and every 25th a long one (workers run parts while the
      // caller runs its own, and it must wait for theirs): each must see every value once.
      for (let call = 0; call < 400; call++) {
        const n = call % 25 === 24 ? capacity - (call % 7) : 1 + ((call * 977) % small);
        const heap = new Float32Array(memory.buffer);
        for (let i = 0; i < n; i++) heap[x / 4 + i] = random();
        heap.fill(Number.NaN, out / 4, out / 4 + n);
        heap[out / 4 + n] = 12345;
        pool.run('relu_values', [x, out, n]);
        const got = new Float32Array(memory.buffer, out, n + 1);
        const xs = new Float32Array(memory.buffer, x, n);
        for (let i = 0; i < n; i++)
          if (got[i] !== Math.max(0, xs[i] as number)) throw new Error(`call ${call}: value ${i} of ${n} is ${got[i]}`);
        expect(got[n]).toBe(12345);
      }
    } finally {
      wasm._free(x);
      wasm._free(out);
    }
  });

  it('fails a call whose part traps, and the next call runs whole', async () => {
    const pool = await open(3);
    const n = 1024;
    const [x, out] = [wasm._malloc(4 * n), wasm._malloc(4 * n)];
    try {
      new Float32Array(memory.buffer, x, n).fill(-1);
      // Past the end of memory: whichever thread runs a part traps there.
      expect(() => pool.run('relu_values', [x, memory.buffer.byteLength, 1 << 20])).toThrow();
      new Float32Array(memory.buffer, out, n).fill(7);
      pool.run('relu_values', [x, out, n]);
      expect([...new Float32Array(memory.buffer, out, n)].every((v) => v === 0)).toBe(true);
    } finally {
      wasm._free(x);
      wasm._free(out);
    }
  });

  it('keeps a watching worker awake between calls, where one that sleeps at once sleeps after each', async () => {
    const pool = await open(2, 0);
    const n = 1 << 16;
    const [x, out] = [wasm._malloc(4 * n), wasm._malloc(4 * n)];
    const calls = 30;
    // Calls 5 ms apart: far longer than tfjs's tens of microseconds between kernels, so that a
    // worker sleeps in every gap unless it watches longer than the gap.
    const sleepsOver = () => {
      pool.run('relu_values', [x, out, n]);
      const before = pool.sleeps;
      for (let call = 0; call < calls; call++) {
        for (const end = performance.now() + 5; performance.now() < end;);
        pool.run('relu_values', [x, out, n]);
      }
      return pool.sleeps - before;
    };
    try {
      new Float32Array(memory.buffer, x, n).fill(1);
      // (a wake-up can take longer than a gap, so not every gap is counted)
      expect(sleepsOver()).toBeGreaterThanOrEqual(calls / 3);
      pool.spinUs = 50_000; // read by the worker the next time it runs out of work
      expect(sleepsOver()).toBeLessThanOrEqual(2);
      expect([...new Float32Array(memory.buffer, out, n)].every((v) => v === 1)).toBe(true);
    } finally {
      wasm._free(x);
      wasm._free(out);
    }
  });

  it('reads DENSESTREAM_POOL_SPIN_US as whole microseconds, and refuses anything else as a wrong option', async () => {
    expect(poolSpinUs(undefined)).toBe(DEFAULT_SPIN_US);
    expect(poolSpinUs('')).toBe(DEFAULT_SPIN_US);
    expect(poolSpinUs('0')).toBe(0);
    expect(poolSpinUs('1500')).toBe(1500);
    for (const bad of ['-1', '1.5', 'yes', '100001', ' 200']) {
      expect(() => poolSpinUs(bad), bad).toThrow(ConfigError);
      expect(() => poolSpinUs(bad), bad).toThrow(`DENSESTREAM_POOL_SPIN_US: expected whole microseconds, 0–100000, got "${bad}"`);
    }
    await expect(KernelPool.create(module, memory, ['relu_values'], 2, -1)).rejects.toThrow(
      'the spin must be whole microseconds, 0–100000, got -1',
    );
    const pool = await open(2, 0);
    expect(() => (pool.spinUs = 0.5)).toThrow('the spin must be whole microseconds, 0–100000, got 0.5');
    expect(pool.spinUs).toBe(0);
  });

  it('puts the installed kernels to sleep for a measurement, and gives them back their watch after it, thrown or not', async () => {
    const spin = wasmKernelSpinUs();
    expect(spin).not.toBeNull(); // two threads: there is a worker to watch
    await withKernelsAsleep(async () => expect(wasmKernelSpinUs()).toBe(0));
    expect(wasmKernelSpinUs()).toBe(spin);
    await expect(
      withKernelsAsleep(async () => {
        throw new Error('measurement failed');
      }),
    ).rejects.toThrow('measurement failed');
    expect(wasmKernelSpinUs()).toBe(spin);
  });

  it('refuses a part count its claim word cannot hold', async () => {
    await expect(KernelPool.create(module, memory, ['relu_values'], 0)).rejects.toThrow('parts must be an integer in [1, 255]');
    await expect(KernelPool.create(module, memory, ['relu_values'], 256)).rejects.toThrow('parts must be an integer in [1, 255]');
  });
});
