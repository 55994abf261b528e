import { afterEach, describe, expect, it, vi } from 'vitest';
import type { MetricsRecord } from '../core/trainer-hook.js';
import { progressMeter, trainProgressLine } from '../pipelines/progress.js';

const record = (step: number, seconds: number): MetricsRecord => ({
  step,
  loss: 5.25,
  parts: {},
  lr: 0.03,
  imagesPerSec: 512,
  dataWaitFraction: 0.02,
  seconds,
});

describe('the training progress line', () => {
  afterEach(() => vi.restoreAllMocks());

  function lines(startStep: number, steps: number, logs: MetricsRecord[]): string[] {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const hook = trainProgressLine(false);
    void hook.onStart?.({ startStep, steps });
    for (const r of logs) hook.onLog?.(r);
    return written;
  }

  it('gives the ETA from the pace of the steps this run has done', () => {
    // 100 of 400 steps in 20 s: 300 more take 60 s.
    expect(lines(0, 400, [record(100, 20)])).toEqual(['step 100/400  loss 5.2500  lr 0.0300  512.0 img/s  data wait 2%  ETA 60 s\n']);
  });

  it('after --resume, counts only the steps done since the resume against its clock', () => {
    // Resumed at 300: 100 steps in 20 s, 400 more take 80 s (not 20 s, as 500 steps in 20 s would say).
    const [line] = lines(300, 800, [record(400, 20)]);
    expect(line).toContain('step 400/800  ');
    expect(line).toMatch(/ETA 80 s\n$/);
  });

  it("a resumed job's meter counts the parts done before as done, not in its pace", () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    let now = 1_000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const meter = progressMeter('precompute', 100, true, false); // a log's lines, also under a terminal
    meter.alreadyDone(50); // the parts an earlier run wrote
    now = 1_000 + 5_000; // under 10 s: no line yet in a log
    meter.advance(10);
    now = 1_000 + 10_000;
    meter.end();
    // 10 positions in 10 s: 1.0 a second, and the 40 left take 40 s (not 6.7, as 60 in 10 s would say).
    expect(written).toEqual(['precompute: 60/100 (60%) samples  1.0 samples/s  ETA 40 s\n']);
  });
});
