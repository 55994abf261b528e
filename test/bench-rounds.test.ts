/**
 * `bench train --rounds`: ratios are taken within a round against the base method of the same
 * setting, and summarised by their median; medians of ms a step per method and setting.
 */
import { describe, expect, it } from 'vitest';
import { kernelsEnv, parseKernels, roundSummaries, type BenchRun } from '../bench/report.js';
import { relaxedSimdSupported } from '../models/relaxed-simd.js';

const run = (round: number, method: string, msPerStep: number, kernels = 'on'): BenchRun => ({
  round,
  method,
  setting: { kernels },
  msPerStep,
});

describe('roundSummaries', () => {
  it('divides within each round, so a slow round moves both sides alike', () => {
    // Round 2 runs everything 1.5× slower; the ratio stays 1.2 there.
    const runs = [
      run(1, 'mocov2', 100),
      run(1, 'densecl', 120),
      run(2, 'mocov2', 150),
      run(2, 'densecl', 180),
      run(3, 'mocov2', 100),
      run(3, 'densecl', 130),
    ];
    const [moco, densecl] = roundSummaries(runs, 'mocov2');
    expect(moco).toEqual({ method: 'mocov2', kernels: 'on', msPerStep: 100, msPerSteps: [100, 150, 100] });
    expect(densecl!.msPerStep).toBe(130);
    expect(densecl!.msPerSteps).toEqual([120, 180, 130]);
    expect(densecl!.against).toBe('mocov2');
    expect(densecl!.ratios).toEqual([1.2, 1.2, 1.3]);
    expect(densecl!.ratio).toBeCloseTo(1.2, 12);
  });

  it('pairs a setting with the base run of the same setting, and gives no ratio without one', () => {
    const runs = [
      run(1, 'mocov2', 100, 'on'),
      run(1, 'mocov2', 200, 'off'),
      run(1, 'hapicl', 130, 'on'),
      run(1, 'hapicl', 220, 'off'),
      run(1, 'softrank', 90, 'direct'),
    ];
    const lines = roundSummaries(runs, 'mocov2');
    expect(lines.find((l) => l.method === 'hapicl' && l.kernels === 'on')!.ratio).toBeCloseTo(1.3, 12);
    expect(lines.find((l) => l.method === 'hapicl' && l.kernels === 'off')!.ratio).toBeCloseTo(1.1, 12);
    expect(lines.find((l) => l.method === 'softrank')).not.toHaveProperty('ratio');
  });
});

describe('--kernels', () => {
  it('takes both, all, or a list of distinct settings, and pins the build of the kernels through the environment', () => {
    expect(parseKernels('both')).toEqual(['off', 'on']);
    expect(parseKernels('all')).toEqual(['off', 'direct', 'on']);
    expect(parseKernels('simd,off')).toEqual(['simd', 'off']);
    expect(parseKernels('simd+xnnpack,on')).toEqual(['simd+xnnpack', 'on']);
    expect(() => parseKernels('simd,simd')).toThrow(
      '--kernels: expected both, all, or a list of distinct settings, each on|off|direct|xnnpack|sleep|simd|relaxed-simd',
    );
    expect(() => parseKernels('fma')).toThrow('got "fma"');
    // a join names each part once, at most one build, and neither on nor off
    for (const bad of ['simd+simd', 'simd+relaxed-simd', 'off+xnnpack', 'on+simd', 'simd+', 'simd+xnnpack,xnnpack+simd'])
      expect(() => parseKernels(bad), bad).toThrow(`got "${bad}"`);
    // `on` leaves the build to the runtime (and the caller's environment); simd and relaxed-simd pin it
    expect(kernelsEnv('on')).toEqual({
      DENSESTREAM_WASM_KERNELS: '1',
      DENSESTREAM_WINOGRAD: '1',
      DENSESTREAM_DIRECT_CONV: '1',
      DENSESTREAM_POOL_SPIN_US: '200',
    });
    expect(kernelsEnv('off')).toEqual({
      DENSESTREAM_WASM_KERNELS: '0',
      DENSESTREAM_WINOGRAD: '1',
      DENSESTREAM_DIRECT_CONV: '1',
      DENSESTREAM_POOL_SPIN_US: '200',
    });
    expect(kernelsEnv('simd')).toEqual({
      DENSESTREAM_WASM_KERNELS: '1',
      DENSESTREAM_WINOGRAD: '1',
      DENSESTREAM_DIRECT_CONV: '1',
      DENSESTREAM_POOL_SPIN_US: '200',
      DENSESTREAM_RELAXED_SIMD: '0',
    });
    expect(kernelsEnv('relaxed-simd')).toEqual({
      DENSESTREAM_WASM_KERNELS: '1',
      DENSESTREAM_WINOGRAD: '1',
      DENSESTREAM_DIRECT_CONV: '1',
      DENSESTREAM_POOL_SPIN_US: '200',
      DENSESTREAM_RELAXED_SIMD: '1',
    });
    // xnnpack: the forward convolutions Winograd does not take go back to tfjs's Conv2D
    expect(kernelsEnv('simd+xnnpack')).toEqual({
      DENSESTREAM_WASM_KERNELS: '1',
      DENSESTREAM_WINOGRAD: '1',
      DENSESTREAM_DIRECT_CONV: '0',
      DENSESTREAM_POOL_SPIN_US: '200',
      DENSESTREAM_RELAXED_SIMD: '0',
    });
    expect(kernelsEnv('direct+xnnpack')).toMatchObject({ DENSESTREAM_WINOGRAD: '0', DENSESTREAM_DIRECT_CONV: '0' });
    // sleep: the kernels' threads sleep as soon as they find no part, as before they spun
    expect(parseKernels('sleep,on')).toEqual(['sleep', 'on']);
    expect(kernelsEnv('simd+xnnpack+sleep')).toMatchObject({
      DENSESTREAM_DIRECT_CONV: '0',
      DENSESTREAM_POOL_SPIN_US: '0',
      DENSESTREAM_RELAXED_SIMD: '0',
    });
  });

  it('takes relaxed-simd only where this runtime compiles it, refusing it up front elsewhere', () => {
    if (relaxedSimdSupported()) expect(parseKernels('simd,relaxed-simd')).toEqual(['simd', 'relaxed-simd']);
    else expect(() => parseKernels('simd,relaxed-simd')).toThrow(/^--kernels relaxed-simd: Node [\d.]+ does not compile relaxed SIMD/);
  });
});
