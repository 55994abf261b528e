/**
 * The kernel pool's protocol (models/kernels/pool.ts): every part of a call runs exactly once,
 * whichever thread claims it — the caller runs the parts no worker has claimed yet — and a part
 * that fails fails its call without leaving a part behind for the next one.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { KERNELS_SHARED_BASE64 } from '../models/kernels/kernels-wasm.js';
import { DEFAULT_SPIN_MS, KernelPool, poolSpinMs } from '../models/kernels/pool.js';
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

  const open = async (parts: number, spinMs?: number): Promise<KernelPool> => {
    const pool = await KernelPool.create(module, memory, ['relu_values'], parts, spinMs);
    pools.push(pool);
    return pool;
  };

  it.each([
    [2, undefined],
    [3, undefined],
    [5, undefined],
    [2, 0],
    [3, 5],
  ])('runs every part of every call once with %i parts, spinning %s ms (relu over values, a sentinel past them)', async (parts, spinMs) => {
    const pool = await open(parts, spinMs);
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

  it('keeps a spinning worker awake between calls, where one that sleeps at once sleeps after every call', async () => {
    const n = 1 << 16;
    const [x, out] = [wasm._malloc(4 * n), wasm._malloc(4 * n)];
    const calls = 30;
    // Calls 2 ms apart, as tfjs's own work between kernels spaces them (by tens of microseconds).
    const sleepsOver = (pool: KernelPool) => {
      pool.run('relu_values', [x, out, n]);
      const before = pool.sleeps;
      for (let call = 0; call < calls; call++) {
        for (const end = performance.now() + 2; performance.now() < end;);
        pool.run('relu_values', [x, out, n]);
      }
      return pool.sleeps - before;
    };
    try {
      new Float32Array(memory.buffer, x, n).fill(1);
      // 50 ms of watching spans a 2-ms gap many times over; 0 ms sleeps in each (a wake-up can take
      // longer than the gap, so not every gap is counted)
      const spinning = sleepsOver(await open(2, 50));
      const sleeping = sleepsOver(await open(2, 0));
      expect(spinning).toBeLessThanOrEqual(2);
      expect(sleeping).toBeGreaterThanOrEqual(calls / 3);
      expect([...new Float32Array(memory.buffer, out, n)].every((v) => v === 1)).toBe(true);
    } finally {
      wasm._free(x);
      wasm._free(out);
    }
  });

  it('closes a pool whose worker is spinning', async () => {
    const pool = await KernelPool.create(module, memory, ['relu_values'], 2, 100);
    const x = wasm._malloc(4 * 64);
    try {
      pool.run('relu_values', [x, x, 64]);
      await pool.close(); // the worker sees the close mid-watch and ends: this resolves
    } finally {
      wasm._free(x);
    }
  });

  it('reads DENSESTREAM_POOL_SPIN_US as whole microseconds, and refuses anything else as a wrong option', () => {
    expect(poolSpinMs(undefined)).toBe(DEFAULT_SPIN_MS);
    expect(poolSpinMs('')).toBe(DEFAULT_SPIN_MS);
    expect(poolSpinMs('0')).toBe(0);
    expect(poolSpinMs('1500')).toBe(1.5);
    for (const bad of ['-1', '1.5', 'yes', '100001', ' 200'])
      expect(() => poolSpinMs(bad), bad).toThrow(
        new ConfigError(`DENSESTREAM_POOL_SPIN_US: expected whole microseconds, 0–100000, got "${bad}"`),
      );
  });

  it('refuses a part count its claim word cannot hold', async () => {
    await expect(KernelPool.create(module, memory, ['relu_values'], 0)).rejects.toThrow('parts must be an integer in [1, 255]');
    await expect(KernelPool.create(module, memory, ['relu_values'], 256)).rejects.toThrow('parts must be an integer in [1, 255]');
    await expect(KernelPool.create(module, memory, ['relu_values'], 2, -1)).rejects.toThrow('the spin must be 0–100 ms, got -1');
  });
});
