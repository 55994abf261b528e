import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runTraining } from '../pipelines/train.js';
import { ConfigError } from '../core/config-error.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { readPositives } from '../positives/checkpoint-codec.js';
import { writeScenesTar } from './helpers/scenes-tar.js';
import { cli } from './helpers/cli.js';

interface Metrics {
  step: number;
  loss: number;
  parts: Record<string, number>;
}
const metricsOf = (out: string): Metrics[] =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Metrics);

/** 48 scenes in 2 shards, 4 anchors a step: clustered into 2 after steps 2 and 4 (lag 1), so steps 4–6 draw positives from the reservoir. */
let pattern: string;
const small = (out: string, ...more: string[]) => [
  '--method',
  'softrank',
  '--data',
  `tar:${pattern}`,
  '--size',
  '32',
  '--batch',
  '8',
  '--steps',
  '6',
  '--recluster-every',
  '2',
  '--clusters',
  '2',
  '--threads',
  '1',
  '--log-every',
  '1',
  '--knn-every',
  '0',
  '--checkpoint-every',
  '100',
  ...more,
  '--out',
  out,
];

beforeAll(async () => {
  ({ pattern } = await writeScenesTar(2, 24, 32));
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('train --method softrank --data tar:… (positives from a reservoir)', () => {
  it('trains from the CLI: exit 0, and once clustered anchors get other images of their cluster as positives', () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-softrank-tar-'));
    const run = cli('train', ...small(out));
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as {
      steps: number;
      positives: { clusterPairs: number; pairs: number; firstClusteredStep: number; reservoir: { capacity: number; held: number } };
    };
    expect(summary.steps).toBe(6);
    expect(summary.positives).toMatchObject({ pairs: 24, firstClusteredStep: 4, reservoir: { capacity: 1024 } });
    expect(summary.positives.clusterPairs).toBeGreaterThan(0);
    // All 24 anchors and at least the next batch were decoded and kept: the stream runs ahead of the trainer.
    expect(summary.positives.reservoir.held).toBeGreaterThanOrEqual(24);
    const m = metricsOf(out);
    expect(m.slice(0, 3).every((r) => r.parts['selfPositives'] === 1)).toBe(true);
    expect(m.slice(3).some((r) => r.parts['selfPositives']! < 1)).toBe(true);
    expect(m.every((r) => Number.isFinite(r.loss))).toBe(true);
  });

  it('keeps tf.memory().numTensors flat; a resumed stream run says its reservoir restarts empty and goes on', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-softrank-tar-resume-'));
    const { resume: _r, ...c } = parseTrainConfig(small(out, '--reservoir', '8'));
    // Flat = every tensor a run makes is freed by its end (mid-run counts also hold the batches collated ahead).
    const before = tf.memory().numTensors;
    const first = await runTraining(c, { hooks: [{ shouldStop: (done) => done === 4 }] });
    expect(first.steps).toBe(4);
    expect(tf.memory().numTensors).toBe(before);
    expect(first.positives?.reservoir).toEqual({ capacity: 8, held: 8 });
    expect(readPositives(join(out, 'checkpoint'))).toMatchObject({ step: 4 });
    expect(readPositives(join(out, 'checkpoint')).reads).toBeUndefined(); // nothing to read again in a stream

    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const { resume, ...resumed } = parseTrainConfig(['--resume', '--out', out]);
    const second = await runTraining(resumed, { resume });
    vi.restoreAllMocks();
    expect(second.steps).toBe(6);
    expect(tf.memory().numTensors).toBe(before);
    expect(lines.join('')).toContain(
      'the reservoir of the last 8 samples that positives are drawn from is not in the checkpoint and restarts empty',
    );
    expect(lines.join('')).toContain('resume is not exact for streams');
    expect(second.positives).toMatchObject({ pairs: 24, reservoir: { capacity: 8 } });
    expect(metricsOf(out).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses a bad --reservoir with exit 2 before any work', () => {
    const bad = cli('train', ...small(mkdtempSync(join(tmpdir(), 'densestream-softrank-tar-bad-')), '--reservoir', '0'));
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--reservoir');
    expect(bad.stdout).toBe('');
    expect(() => parseTrainConfig(['--method', 'softrank', '--data', 'scenes:32:16', '--reservoir', '64'])).toThrow(
      '--reservoir: only a stream source (tar:PATTERN) draws positives from a reservoir of recent samples; --data scenes:32:16 reads them again by id',
    );
    expect(() => parseTrainConfig(['--method', 'softrank', '--data', 'tar:x-{0..1}.tar', '--reservoir', '100000'])).toThrow(
      '--reservoir 100000: holds that many decoded images',
    );
    expect(() => parseTrainConfig(['--method', 'densecl', '--data', 'tar:x-{0..1}.tar', '--reservoir', '64'])).toThrow(ConfigError);
    expect(() => parseTrainConfig(['--method', 'densecl', '--data', 'tar:x-{0..1}.tar', '--reservoir', '64'])).toThrow(
      '--reservoir: only --method softrank reads it',
    );
    expect(parseTrainConfig(['--method', 'softrank', '--data', 'tar:x-{0..1}.tar', '--reservoir', '64']).reservoir).toBe(64);
  });
});
