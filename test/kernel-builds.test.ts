/**
 * The two builds of densestream's wasm kernels (models/kernels/build.mjs): which one runs, what
 * the shipped bytes hold, and that both give the same values. vitest.config.ts runs this file
 * once on each build.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { backpropFilter } from './helpers/kernel-calls.js';
import { relativeError } from './helpers/relative-error.js';
import { selectBackend } from '../models/backend.js';
import {
  KERNELS_PLAIN_BASE64,
  KERNELS_PLAIN_RELAXED_BASE64,
  KERNELS_SHARED_BASE64,
  KERNELS_SHARED_RELAXED_BASE64,
} from '../models/kernels/kernels-wasm.js';
import { installWasmKernels, relaxedSimdSupported, wasmKernelBuild } from '../models/kernels/wasm-kernels.js';

describe("densestream's kernel builds", () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });

  it('run the build the environment asks for (each vitest project pins one), else relaxed SIMD where the runtime has it', () => {
    const env = process.env['DENSESTREAM_RELAXED_SIMD'];
    if (env === '1') expect(relaxedSimdSupported()).toBe(true);
    expect(wasmKernelBuild()).toBe(env === '1' || (env !== '0' && relaxedSimdSupported()) ? 'relaxed-simd' : 'simd');
  });

  it('ship fused multiply-adds in the relaxed-SIMD modules only', () => {
    // f32x4.relaxed_madd is 0xfd 0x105 (LEB128: fd 85 02); the SIMD modules must not hold it
    const count = (base64: string) => Buffer.from(base64, 'base64').toString('hex').split('fd8502').length - 1;
    expect(count(KERNELS_SHARED_RELAXED_BASE64)).toBeGreaterThan(100);
    expect(count(KERNELS_PLAIN_RELAXED_BASE64)).toBeGreaterThan(100);
    expect(count(KERNELS_SHARED_BASE64)).toBe(0);
    expect(count(KERNELS_PLAIN_BASE64)).toBe(0);
  });

  it.runIf(relaxedSimdSupported())(
    'give the same filter gradient, to float rounding, on either build, and keep the build across thread counts',
    async () => {
      // a strided 3×3 gradient, 32 → 64 channels: the direct kernel, whose products fuse most
      await tf.setBackend('cpu');
      const x = tf.randomNormal([3, 11, 9, 32], 0, 1, 'float32', 5) as tf.Tensor4D;
      const dy = tf.randomNormal([3, 6, 5, 64], 0, 1, 'float32', 6) as tf.Tensor4D;
      const filterShape = [3, 3, 32, 64] as const;
      const reference = tf.tidy(() => backpropFilter(x, dy, filterShape, 'same', 2).dataSync().slice());
      const [xs, dys] = [x.dataSync().slice(), dy.dataSync().slice()];
      tf.dispose([x, dy]);
      await tf.setBackend('wasm');
      const initial = wasmKernelBuild();
      const gradient = async (build: 'simd' | 'relaxed-simd') => {
        expect(await installWasmKernels(2, build)).toBe(build);
        return tf.tidy(() =>
          backpropFilter(tf.tensor4d(xs, [3, 11, 9, 32]), tf.tensor4d(dys, [3, 6, 5, 64]), filterShape, 'same', 2)
            .dataSync()
            .slice(),
        );
      };
      try {
        const fused = await gradient('relaxed-simd');
        await installWasmKernels(1);
        expect(wasmKernelBuild()).toBe('relaxed-simd');
        const plain = await gradient('simd');
        expect(relativeError(fused, plain)).toBeLessThanOrEqual(1e-6);
        expect(relativeError(fused, reference)).toBeLessThanOrEqual(1e-5);
      } finally {
        await installWasmKernels(2, initial);
      }
    },
  );
});
