/**
 * `bench step-kernels`: one line per kernel and shape, the slowest first, then each method's
 * totals; train's flags reach the method; softrank and unknown methods are refused first.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stepKernelsBench } from '../bench/step-kernels.js';
import { relaxedSimdSupported } from '../models/kernels/wasm-kernels.js';

type Line = Record<string, unknown>;

async function linesOf(argv: string[]): Promise<Line[]> {
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  try {
    await stepKernelsBench(argv);
  } finally {
    spy.mockRestore();
  }
  return out
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

describe('bench step-kernels', () => {
  afterEach(() => vi.restoreAllMocks());

  it("times each method's kernels by shape, slowest first, with totals and the ratio to mocov2; train's flags reach the method", async () => {
    const before = tf.memory().numTensors;
    const tiny = ['--size', '16', '--batch', '4', '--steps', '2', '--warmup', '1'];
    const lines = await linesOf(['--method', 'mocov2,hapicl', ...tiny, '--top', '1000', '--train=--queue 8']);
    expect(tf.memory().numTensors).toBe(before);
    for (const method of ['mocov2', 'hapicl']) {
      const kernels = lines.filter((l) => l['method'] === method && typeof l['kernel'] === 'string');
      const total = lines.find((l) => l['method'] === method && l['kernelCallsPerStep'] !== undefined)!;
      const ms = kernels.map((l) => l['msPerStep'] as number);
      expect(ms).toEqual([...ms].sort((a, b) => b - a));
      // every kernel call is on some line: the lines' calls add up to the total
      const calls = kernels.reduce((s, l) => s + (l['callsPerStep'] as number), 0);
      expect(calls).toBeCloseTo(total['kernelCallsPerStep'] as number, 6);
      expect(total['kernelMsPerStep'] as number).toBeLessThanOrEqual(total['wallMsPerStep'] as number);
      expect(kernels.some((l) => (l['kernel'] as string).startsWith('Conv2D [4,'))).toBe(true);
    }
    // --queue 8 reached both: InfoNCE's 4 queries against 8 queued keys
    for (const method of ['mocov2', 'hapicl'])
      expect(lines.some((l) => l['method'] === method && l['kernel'] === 'DensestreamContrastLogProb [4,1]·[4,8]')).toBe(true);
    const summary = lines.at(-1)!;
    expect(summary['summary']).toBeDefined();
    expect(Object.keys(summary['ratios'] as object)).toEqual(['hapicl']);
  });

  it.runIf(relaxedSimdSupported())(
    'alternates the builds of the kernels with --builds, a line per build and their ratio round by round',
    async () => {
      const tiny = ['--size', '16', '--batch', '4', '--steps', '2', '--warmup', '1', '--rounds', '2', '--top', '1'];
      const lines = await linesOf(['--method', 'mocov2', ...tiny, '--builds', 'simd,relaxed-simd', '--train=--queue 8']);
      const totals = lines.filter((l) => l['kernelCallsPerStep'] !== undefined);
      expect(totals.map((l) => l['kernelBuild'])).toEqual(['simd', 'relaxed-simd']);
      // the same kernels run on either build
      expect(totals[0]!['kernelCallsPerStep']).toBe(totals[1]!['kernelCallsPerStep']);
      const last = lines.at(-1)!;
      expect(last['summary']).toBe('wall ms a step, relaxed-simd against simd, within each round');
      const ratios = (last['ratios'] as Record<string, { perRound: number[] }>)['mocov2']!;
      expect(ratios.perRound).toHaveLength(2);
      for (const r of ratios.perRound) expect(r).toBeGreaterThan(0);
    },
  );

  it.runIf(!relaxedSimdSupported())(
    'refuses --builds relaxed-simd where the runtime has no relaxed SIMD, before building anything',
    async () => {
      await expect(stepKernelsBench(['--builds', 'simd,relaxed-simd'])).rejects.toThrow(
        /--builds relaxed-simd: Node .* does not compile relaxed SIMD/,
      );
    },
  );

  it('refuses softrank, an unknown method, geometric matches, another optimiser and a flag train does not know, before building anything', async () => {
    await expect(stepKernelsBench(['--method', 'mocov2,softrank'])).rejects.toThrow('--method softrank: its step needs the positives');
    await expect(stepKernelsBench(['--method', 'moco'])).rejects.toThrow('--method: expected some of');
    await expect(stepKernelsBench(['--method', 'densecl', '--train=--match geometric'])).rejects.toThrow(
      '--match geometric: its matches come from',
    );
    await expect(stepKernelsBench(['--train=--bogus 1'])).rejects.toThrow('unknown option --bogus');
    await expect(stepKernelsBench(['--builds', 'simd,fma'])).rejects.toThrow('--builds: expected some of simd,relaxed-simd, got "fma"');
    await expect(stepKernelsBench(['--builds', 'simd,simd'])).rejects.toThrow('--builds: "simd,simd" names a build twice');
    await expect(stepKernelsBench(['--train=--optimizer lars'])).rejects.toThrow(
      "--optimizer: this bench times the trainer's default SGD step only",
    );
  });
});
