import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../core/config-error.js';
import { parseBackendChoice, selectBackend } from '../models/backend.js';
import { relaxedSimdChoice, relaxedSimdSupported, useRelaxedSimd } from '../models/relaxed-simd.js';
import { wasmThreadCount } from '../models/wasm-threads.js';
import { createReferenceNet } from '../bench/reference-net.js';

/** Losses of the first `steps` SGD steps of the reference net on fixed data. */
async function trainLosses(steps: number): Promise<number[]> {
  const net = createReferenceNet(7);
  const images = tf.randomUniform([4, 16, 16, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const labels = tf.tensor1d([0, 1, 2, 3], 'int32');
  const losses: number[] = [];
  const tensorsBefore = tf.memory().numTensors;
  for (let i = 0; i < steps; i++) {
    losses.push(await net.step(images, labels, 0.1));
    // Flat across steps: the step leaves nothing behind.
    if (i > 0) expect(tf.memory().numTensors).toBe(tensorsBefore);
  }
  net.dispose();
  tf.dispose([images, labels]);
  return losses;
}

describe('backend selection', () => {
  it('refuses an unknown --backend before any work, naming the field and the choices', () => {
    expect(() => parseBackendChoice('gpu')).toThrow('--backend: expected one of auto|tensorflow|webgpu|wasm|cpu, got "gpu"');
    expect(parseBackendChoice('wasm')).toBe('wasm');
  });

  it('refuses a thread count outside 1–8', async () => {
    await expect(selectBackend('wasm', { threads: 0 })).rejects.toThrow('--threads');
  });

  it('says why tensorflow is unavailable when neither native package is installed', async () => {
    await expect(selectBackend('tensorflow')).rejects.toThrow(
      /passed over @tensorflow\/tfjs-node-gpu.*\n.*passed over @tensorflow\/tfjs-node/,
    );
  });

  it('auto passes over the native packages, says why, and takes wasm with the requested threads', async () => {
    const selection = await selectBackend('auto', { threads: 2 });
    expect(selection.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(wasmThreadCount()).toBe(2);
    expect(selection.reasons[0]).toMatch(/^backend: passed over @tensorflow\/tfjs-node-gpu: /);
    expect(selection.reasons[1]).toMatch(/^backend: passed over @tensorflow\/tfjs-node: /);
    // the build of densestream's kernels: relaxed SIMD where the runtime compiles it, else why not
    const build =
      process.env['DENSESTREAM_RELAXED_SIMD'] === '0'
        ? 'simd'
        : relaxedSimdSupported()
          ? 'relaxed-simd'
          : 'simd (this runtime has no relaxed SIMD: Node 22 has)';
    expect(selection.reasons.at(-1)).toBe(
      `backend: took wasm (@tensorflow/tfjs-backend-wasm (threaded-simd, 2 threads)), densestream's kernels ${build}`,
    );
    expect(selection.kernelBuild).toBe(build.split(' ')[0]);
  });

  it('reads DENSESTREAM_RELAXED_SIMD as 0 (off), 1 (required) or unset (auto), the option first, and refuses anything else as a wrong option', () => {
    expect(relaxedSimdChoice(undefined, undefined)).toBe('auto');
    expect(relaxedSimdChoice(undefined, '')).toBe('auto');
    expect(relaxedSimdChoice(undefined, '0')).toBe(false);
    expect(relaxedSimdChoice(undefined, '1')).toBe(true);
    expect(relaxedSimdChoice(false, '1')).toBe(false);
    expect(relaxedSimdChoice('auto', '0')).toBe('auto');
    expect(() => relaxedSimdChoice(undefined, 'yes')).toThrow(ConfigError);
    expect(() => relaxedSimdChoice(undefined, 'yes')).toThrow('DENSESTREAM_RELAXED_SIMD: expected 0 (off) or 1 (required), got "yes"');
  });

  it('takes the relaxed-SIMD build where the runtime has it unless told not to, and refuses a requirement it cannot meet, naming who asked', () => {
    expect(useRelaxedSimd('auto', true)).toBe(true);
    expect(useRelaxedSimd('auto', false)).toBe(false);
    expect(useRelaxedSimd(false, true)).toBe(false);
    expect(useRelaxedSimd(true, true)).toBe(true);
    expect(() => useRelaxedSimd(true, false)).toThrow(ConfigError);
    expect(() => useRelaxedSimd(true, false, 'relaxedSimd: true')).toThrow(
      /^relaxed SIMD was required \(relaxedSimd: true\), but Node [\d.]+ does not compile it: Node 22 and later do/,
    );
  });

  it.runIf(!relaxedSimdSupported())('refuses a required relaxed SIMD on a runtime without it before loading any backend', async () => {
    await tf.setBackend('cpu');
    await expect(selectBackend('wasm', { threads: 2, relaxedSimd: true })).rejects.toThrow(
      /^relaxed SIMD was required \(relaxedSimd: true\)/,
    );
    expect(tf.getBackend()).toBe('cpu');
    // where densestream's kernels cannot run, the requirement is moot
    await expect(selectBackend('cpu', { relaxedSimd: true })).resolves.toMatchObject({ backend: 'cpu' });
    await expect(selectBackend('wasm', { threads: 2, relaxedSimd: true, kernels: false })).resolves.toMatchObject({ backend: 'wasm' });
  });

  it('trains the reference CNN on wasm exactly as on cpu for the first steps, at a flat tensor count', async () => {
    await selectBackend('cpu');
    const cpu = await trainLosses(5);
    await selectBackend('wasm', { threads: 2 });
    const wasm = await trainLosses(5);
    expect(cpu[4]!).toBeLessThan(cpu[0]!); // the loss falls
    for (let i = 0; i < 5; i++) expect(Math.abs(wasm[i]! - cpu[i]!)).toBeLessThanOrEqual(1e-4 * Math.abs(cpu[i]!));
  });

  it('keeps live tensors when wasm is selected again, and refuses to change its thread count', async () => {
    await selectBackend('wasm', { threads: 2 });
    const kept = tf.tensor1d([1, 2, 3]);
    await selectBackend('wasm', { threads: 2 }); // same request: nothing is torn down
    expect(Array.from(kept.dataSync())).toEqual([1, 2, 3]);
    await expect(selectBackend('wasm', { threads: 1 })).rejects.toThrow(
      '--threads: the wasm backend already runs with 2 threads in this process and cannot change to 1',
    );
    await expect(selectBackend('wasm', { threads: 4 })).rejects.toThrow('cannot change to 4');
    expect(Array.from(kept.dataSync())).toEqual([1, 2, 3]);
    expect(wasmThreadCount()).toBe(2);
  });
});
