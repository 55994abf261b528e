/**
 * The kernels of the phased Conv2D input gradient on wasm (models/kernels/phase-kernels.ts): the
 * weave of the phases against the Pack-and-Transpose form and its gradient against strided
 * slices, and the flipped taps against the engine's gather and transpose, each with numTensors flat.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { flippedFilter, FLIP_FILTER_KERNEL, INTERLEAVE_KERNEL } from '../models/kernels/phase-kernels.js';
import { wasmKernelThreads } from '../models/kernels/wasm-kernels.js';

describe("the phased input gradient's kernels on wasm", () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });

  it('weaves phases as the Pack-and-Transpose form does, and differentiates the weave by strided slices', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const [sh, sw] = [2, 3];
    const phases = Array.from({ length: sh * sw }, (_, i) => tf.randomNormal([2, 3, 4, 5], 0, 1, 'float32', 40 + i));
    const weave = (...ps: tf.Tensor[]) =>
      tf.engine().runKernel(INTERLEAVE_KERNEL, Object.fromEntries(ps.map((t, i) => [`p${i}`, t])), {
        sh,
        sw,
      } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
    const woven = weave(...phases);
    const ops = tf.tidy(() =>
      tf.reshape(tf.transpose(tf.reshape(tf.stack(phases, 3), [2, 3, 4, sh, sw, 5]), [0, 1, 3, 2, 4, 5]), [2, 3 * sh, 4 * sw, 5]),
    );
    expect(Array.from(woven.dataSync())).toEqual(Array.from(ops.dataSync()));
    const w = tf.randomNormal(woven.shape, 0, 1, 'float32', 50);
    const grads = tf.grads((...ps: tf.Tensor[]) => tf.sum(tf.mul(weave(...ps), w)))(phases);
    grads.forEach((g, i) => {
      const [a, b] = [Math.floor(i / sw), i % sw];
      const expected = tf.stridedSlice(w, [0, a, b, 0], w.shape, [1, sh, sw, 1]);
      expect(Array.from(g.dataSync())).toEqual(Array.from(expected.dataSync()));
      expected.dispose();
    });
    tf.dispose([...phases, woven, ops, w, ...grads]);
    expect(tf.memory().numTensors).toBe(before);
  });

  // [kh,kw,A,B], then the (rows, cols) taps a phase reads, descending as axisPhases lists them:
  // stride 1 (every tap), a stride-2 phase of a 3×3 (two taps and one), a 1×1, a 5×5 at stride 3,
  // and a filter large enough for two threads
  it.each([
    [
      [3, 3, 5, 7],
      [2, 1, 0],
      [2, 1, 0],
    ],
    [[3, 3, 4, 6], [2, 0], [1]],
    [[1, 1, 3, 4], [0], [0]],
    [
      [5, 5, 2, 3],
      [4, 1],
      [3, 0],
    ],
    [
      [3, 3, 128, 128],
      [2, 1, 0],
      [2, 1, 0],
    ],
  ])("flips the taps of a %j filter, %j × %j, as the engine's ops do, in one call", async (shape, rows, cols) => {
    expect(wasmKernelThreads()).toBe(2);
    const before = tf.memory().numTensors;
    const filter = tf.randomNormal(shape as [number, number, number, number], 0, 1, 'float32', 7) as tf.Tensor4D;
    const flipped = flippedFilter(filter, rows, cols);
    // the reference: gather the taps in order, then [th,tw,A,B] → [th,tw,B,A]
    const ops = tf.tidy(() =>
      tf.transpose(tf.gather(tf.gather(filter, tf.tensor1d(rows, 'int32'), 0), tf.tensor1d(cols, 'int32'), 1), [0, 1, 3, 2]),
    );
    expect(flipped.shape).toEqual([rows.length, cols.length, shape[3], shape[2]]);
    expect([...flipped.dataSync()]).toEqual([...ops.dataSync()]);
    const profiled = await tf.profile(() => flippedFilter(filter, rows, cols));
    expect(profiled.kernelNames).toEqual([FLIP_FILTER_KERNEL]);
    tf.dispose([filter, flipped, ops, profiled.result as tf.Tensor]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses taps outside the filter, or not in a run', () => {
    const filter = tf.zeros([3, 3, 2, 2]) as tf.Tensor4D;
    expect(() => flippedFilter(filter, [3], [0])).toThrow(/outside 3×3/);
    expect(() => flippedFilter(filter, [2, 1, 1], [0])).toThrow(/descending run/);
    tf.dispose(filter);
  });
});
