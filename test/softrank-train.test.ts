import * as tf from '@tensorflow/tfjs';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readTensors } from '../models/weights-io.js';
import { runTraining } from '../pipelines/train.js';
import { ConfigError } from '../core/config-error.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { readPositives } from '../positives/checkpoint-codec.js';
import { Reclustering } from '../positives/reclustering.js';
import { CLI, cli, sameBuildEnv } from './helpers/cli.js';

// The built CLI, as a user runs it (`npm test` builds first); the k-means worker is its compiled twin too.
/** The CLI in the background, so two runs share the machine's two cores. */
function cliAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // on this process's build: the resumed run below is in-process, and its losses are compared to the digit
    const child = spawn(process.execPath, [CLI, ...args], { env: sameBuildEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/**
 * 16 scenes, 4 pairs a batch: epoch 0 is steps 1–4 (every anchor new, so its own positive); the
 * bank is clustered after step 4 and serves from step 4 + ⌊4/2⌋ + 1 = 7, when epoch 1's anchors,
 * all clustered, get positives from their clusters.
 */
const SMALL = [
  '--method',
  'softrank',
  '--data',
  'scenes:32:16',
  '--size',
  '32',
  '--batch',
  '8',
  '--steps',
  '12',
  '--recluster-every',
  '4',
  '--clusters',
  '4',
  '--threads',
  '1',
  '--log-every',
  '1',
  '--augment',
  'backend',
]; // pinned: runs are compared, and auto's timing could pick either path

interface Summary {
  method: string;
  steps: number;
  positives: {
    reclusters: number;
    clusters: number;
    bank: number;
    pairs: number;
    selfPositiveFraction: number;
    firstClusteredStep: number | null;
    selfPositiveFractionAfterClustering: number | null;
  };
}
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

describe('train --method softrank', () => {
  const out = mkdtempSync(join(tmpdir(), 'densestream-softrank-'));
  const again = mkdtempSync(join(tmpdir(), 'densestream-softrank-again-'));
  let run: Awaited<ReturnType<typeof cliAsync>>;
  let rerun: Awaited<ReturnType<typeof cliAsync>>;
  beforeAll(async () => {
    [run, rerun] = await Promise.all([cliAsync('train', ...SMALL, '--out', out), cliAsync('train', ...SMALL, '--out', again)]);
  });

  it('trains with clustering positives from the CLI: reclusters, and after the first clustering anchors get other images as positives', () => {
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as Summary;
    expect(summary).toMatchObject({
      method: 'softrank',
      steps: 12,
      positives: { clusters: 4, bank: 16, pairs: 48, firstClusteredStep: 7 },
    });
    expect(summary.positives.reclusters).toBeGreaterThanOrEqual(1);
    expect(summary.positives.selfPositiveFractionAfterClustering).not.toBeNull();
    expect(summary.positives.selfPositiveFractionAfterClustering!).toBeLessThan(1);

    const metrics = metricsOf(out);
    expect(metrics.map((m) => m.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(metrics.every((m) => Number.isFinite(m.loss) && Number.isFinite(m.parts['image']) && Number.isFinite(m.parts['patch']))).toBe(
      true,
    );
    // Before any clustering every anchor is its own positive; steps 7–12 are served by one.
    for (const m of metrics) expect(m.loss).toBeCloseTo(m.parts['image']! + m.parts['patch']!, 4); // α = β = 1
    expect(metrics.slice(0, 6).every((m) => m.parts['selfPositives'] === 1)).toBe(true);
    expect(metrics.slice(6).some((m) => m.parts['selfPositives']! < 1)).toBe(true);
    expect(metrics.at(-1)!.parts['reclusters']).toBeGreaterThanOrEqual(1);
    expect(readFileSync(join(out, 'skipped.jsonl'), 'utf8')).toBe('');
    expect(run.stderr).toContain('self-pairs');
  });

  it('pairs the same way on a second run: which clustering an anchor draws from does not depend on the worker’s speed', () => {
    expect(rerun.status, rerun.stderr).toBe(0);
    const a = metricsOf(out);
    const b = metricsOf(again);
    expect(b.map((m) => m.parts['selfPositives'])).toEqual(a.map((m) => m.parts['selfPositives']));
    expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
  });

  it('refuses an odd --batch with exit 2 before any work, naming --batch', () => {
    const bad = cli('train', '--method', 'softrank', '--batch', '7', '--out', mkdtempSync(join(tmpdir(), 'densestream-softrank-bad-')));
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(
      '--batch: softrank trains on (anchor, positive) pairs, --batch counting both: expected an even number ≥ 4, got 7',
    );
    expect(bad.stdout).toBe('');
  });

  it.each([
    [['--batch', '2'], '--batch: softrank trains on (anchor, positive) pairs'],
    [['--reservoir', '64'], '--reservoir: only a stream source (tar:PATTERN) draws positives from a reservoir of recent samples'],
    [['--data', 'parquet:views'], 'not precomputed views'],
    [
      ['--clusters', '50', '--bank-size', '100'],
      '--clusters 50: needs at least 200 embeddings to cluster (4 per cluster), but --bank-size is 100',
    ],
    [['--alpha', '0', '--beta', '0'], '--alpha 0 --beta 0: softrank would have no loss'],
    [['--beta', '1.5'], '--beta'],
    [['--negatives=-1'], '--negatives: expected an integer ≥ 0, got "-1"'],
    [['--negatives', '2.5'], '--negatives: expected an integer ≥ 0'],
    [['--negatives', '64', '--bank-size', '64'], '--negatives 64: expected fewer negatives per pair than the bank holds, --bank-size 64'],
  ])('refuses %j with softrank', (args, message) => {
    expect(() => parseTrainConfig(['--method', 'softrank', ...args])).toThrow(ConfigError);
    expect(() => parseTrainConfig(['--method', 'softrank', ...args])).toThrow(message);
  });

  it('weighs its two rankings by --alpha and --beta: loss = α·image + β·patch', async () => {
    const { resume: _r, ...c } = parseTrainConfig([
      ...SMALL.filter((_, i, all) => all[i - 1] !== '--steps' && all[i] !== '--steps'),
      '--steps',
      '2',
      '--alpha',
      '0.5',
      '--beta',
      '0.25',
      '--knn-every',
      '0',
      '--out',
      mkdtempSync(join(tmpdir(), 'densestream-softrank-weights-')),
    ]);
    await runTraining(c);
    const metrics = metricsOf(c.out);
    expect(metrics).toHaveLength(2);
    for (const m of metrics) expect(m.loss).toBeCloseTo(0.5 * m.parts['image']! + 0.25 * m.parts['patch']!, 4);
  });

  it('refuses more clusters than a quarter of a small source before training', async () => {
    const { resume: _r, ...c } = parseTrainConfig([
      '--method',
      'softrank',
      '--data',
      'scenes:32:16',
      '--clusters',
      '5',
      '--threads',
      '1',
      '--out',
      mkdtempSync(join(tmpdir(), 'densestream-softrank-bad-')),
    ]);
    await expect(runTraining(c)).rejects.toThrow(
      '--clusters 5: needs at least 20 embeddings to cluster (4 per cluster), but the bank holds 16 (the size of --data scenes:32:16)',
    );
  });

  it('refuses the clustering options with another method', () => {
    expect(() => parseTrainConfig(['--method', 'densecl', '--clusters', '10', '--recluster-every', '5'])).toThrow(
      '--recluster-every, --clusters: only --method softrank reads them (clustering positives, soft ranking); drop them with --method densecl',
    );
    expect(() => parseTrainConfig(['--method', 'hapicl', '--relation', 'within'])).toThrow(
      '--relation: only --method softrank reads it (clustering positives, soft ranking); drop it with --method hapicl',
    );
    expect(() => parseTrainConfig(['--method', 'mocov2', '--negatives', '4'])).toThrow(
      '--negatives: only --method softrank reads it (clustering positives, soft ranking); drop it with --method mocov2',
    );
  });

  it('refuses --negatives K ≥ the bank a small source gives, with exit 2, before any work', () => {
    const bad = cli(
      'train',
      '--method',
      'softrank',
      '--data',
      'scenes:32:16',
      '--negatives',
      '16',
      '--threads',
      '1',
      '--out',
      mkdtempSync(join(tmpdir(), 'densestream-softrank-bad-')),
    );
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(
      '--negatives 16: expected fewer negatives per pair than the bank holds, 16 (the size of --data scenes:32:16)',
    );
    expect(bad.stdout).toBe('');
  });

  it('keeps tf.memory().numTensors flat, and resumed after step 8 (a clustering just started: re-run from the restored bank) trains steps 9–12 as the uninterrupted run', async () => {
    const out2 = mkdtempSync(join(tmpdir(), 'densestream-softrank-resume-'));
    const { resume: _r, ...c } = parseTrainConfig([...SMALL, '--out', out2]);
    // Flat = every tensor a run makes is freed by its end. (Counts taken mid-run also hold the
    // batches the data plane has collated ahead, a number that depends on timing.)
    const before = tf.memory().numTensors;
    const first = await runTraining(c, { hooks: [{ shouldStop: (done) => done === 8 }] });
    expect(first.steps).toBe(8);
    expect(tf.memory().numTensors).toBe(before);
    expect(first.positives?.reclusters).toBeGreaterThanOrEqual(1);
    // The clustering after step 8 was still running: the checkpoint records it to re-run.
    const saved = readPositives(join(out2, 'checkpoint'));
    expect(saved).toMatchObject({ step: 8, pending: { round: 2 }, bank: { ids: expect.any(Array) } });
    expect(saved.bank.ids).toHaveLength(16);

    const { resume, ...resumed } = parseTrainConfig(['--resume', '--out', out2]);
    expect(resume).toBe(true);
    const second = await runTraining(resumed, { resume: true });
    expect(second.steps).toBe(12);
    expect(tf.memory().numTensors).toBe(before);
    // The summary covers the whole run, as the uninterrupted one's does.
    const straight = (JSON.parse(run.stdout) as Summary).positives;
    expect(second.positives).toMatchObject({
      pairs: straight.pairs,
      selfPositiveFraction: straight.selfPositiveFraction,
      firstClusteredStep: 7,
      reclusters: straight.reclusters,
      bank: 16,
    });
    const a = metricsOf(out);
    const b = metricsOf(out2);
    expect(b.map((m) => m.step)).toEqual(a.map((m) => m.step));
    b.forEach((m, i) => {
      expect(m.loss).toBeCloseTo(a[i]!.loss, 5);
      expect(m.parts['selfPositives']).toBe(a[i]!.parts['selfPositives']);
      // not `reclusters`: it counts clusterings finished by the time of the log line, and the worker's pace varies with load
    });
  });
});

/** All saved weights of a run's checkpoint, by name. */
function weights(dir: string): Map<string, Float32Array | Int32Array | Uint8Array> {
  return new Map(readTensors(join(dir, 'checkpoint'), '').map(({ name, tensor }) => [name, tensor.dataSync()]));
}

function worstDifference(a: Map<string, ArrayLike<number>>, b: Map<string, ArrayLike<number>>): number {
  expect([...b.keys()]).toEqual([...a.keys()]);
  let worst = 0;
  for (const [name, va] of a) {
    const vb = b.get(name)!;
    for (let i = 0; i < va.length; i++) worst = Math.max(worst, Math.abs(va[i]! - vb[i]!));
  }
  return worst;
}

/**
 * 16 scenes, 4 pairs a step, clustered into 2 after steps 2 and 4 (lag 1): step 4 pairs
 * epoch 0's last, never-seen anchors by their nearest centroid; steps 4–6 draw 2 negatives a pair.
 */
const EXACT = [
  '--method',
  'softrank',
  '--data',
  'scenes:32:16',
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
  '--negatives',
  '2',
  '--threads',
  '1',
  '--warmup',
  '2',
  '--checkpoint-every',
  '100',
  '--log-every',
  '1',
  '--knn-every',
  '0',
  '--augment',
  'backend',
];

describe('softrank resume', () => {
  const straight = mkdtempSync(join(tmpdir(), 'densestream-softrank-straight-'));
  let straightRun: Awaited<ReturnType<typeof runTraining>>;
  beforeAll(async () => {
    const { resume: _r, ...c } = parseTrainConfig([...EXACT, '--out', straight]);
    straightRun = await runTraining(c);
  });

  it('uses first-visit positives and negatives in the straight run (what the resumed runs must reproduce)', () => {
    expect(straightRun.positives).toMatchObject({ reclusters: 2, firstClusteredStep: 4, selfPositiveFractionAfterClustering: 0 });
    expect(straightRun.positives!.centroidPairs).toBeGreaterThanOrEqual(4); // step 4's anchors, all new
    const m = metricsOf(straight);
    expect(m.map((r) => r.parts['negatives'] ?? 0)).toEqual([0, 0, 0, 2, 2, 2]);
  });

  it.each([3, 4])(
    'continues exactly: 6 steps straight and %i + the rest resumed give the same weights (frozen targets included) within 1e-5, and the same bank',
    async (at) => {
      const split = mkdtempSync(join(tmpdir(), `densestream-softrank-split${at}-`));
      const { resume: _r, ...c } = parseTrainConfig([...EXACT, '--out', split]);
      const first = await runTraining(c, { hooks: [{ shouldStop: (done) => done === at }] });
      expect(first.steps).toBe(at);
      const { resume, ...resumed } = parseTrainConfig(['--resume', '--out', split]);
      expect(resume).toBe(true);
      const second = await runTraining(resumed, { resume: true });
      expect(second.steps).toBe(6);
      expect(second.positives).toEqual({
        ...straightRun.positives,
        selfReasons: expect.any(Object),
        clusteringSeconds: expect.any(Number),
        waitedSeconds: expect.any(Number),
      });

      const wa = weights(straight);
      expect([...wa.keys()].some((k) => k.startsWith('frozen/1/encoder/'))).toBe(true);
      expect(worstDifference(wa, weights(split))).toBeLessThanOrEqual(1e-5);
      const pa = readPositives(join(straight, 'checkpoint'));
      const pb = readPositives(join(split, 'checkpoint'));
      expect(pb.bank.ids).toEqual(pa.bank.ids);
      let worstBank = 0;
      pa.bank.data.forEach((v, i) => {
        worstBank = Math.max(worstBank, Math.abs(v - pb.bank.data[i]!));
      });
      expect(worstBank).toBeLessThanOrEqual(1e-5);
      expect(pb.clusterings.map((k) => [...k.assignments])).toEqual(pa.clusterings.map((k) => [...k.assignments]));
      expect(metricsOf(split).map((m) => m.parts['selfPositives'])).toEqual(metricsOf(straight).map((m) => m.parts['selfPositives']));
    },
  );

  it('resumes a checkpoint from before --relation (none in its configuration) within one view, as it trained', async () => {
    const within = mkdtempSync(join(tmpdir(), 'densestream-softrank-within-'));
    const old = mkdtempSync(join(tmpdir(), 'densestream-softrank-old-'));
    const { resume: _a, ...w } = parseTrainConfig([...EXACT, '--relation', 'within', '--out', within]);
    expect(w.relation).toBe('within');
    await runTraining(w);
    const { resume: _b, ...o } = parseTrainConfig([...EXACT, '--relation', 'within', '--out', old]);
    await runTraining(o, { hooks: [{ shouldStop: (done) => done === 3 }] });
    const file = join(old, 'checkpoint', 'weights.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { meta: { config: Record<string, unknown> } };
    delete manifest.meta.config['relation'];
    writeFileSync(file, JSON.stringify(manifest));
    const { resume, ...resumed } = parseTrainConfig(['--resume', '--out', old]);
    expect(resume).toBe(true);
    expect(resumed.relation).toBeUndefined();
    await runTraining(resumed, { resume: true });
    expect(worstDifference(weights(within), weights(old))).toBeLessThanOrEqual(1e-5);
    // …and the default, across views, trains other weights.
    expect(worstDifference(weights(straight), weights(within))).toBeGreaterThan(1e-3);
  });

  it('refuses a resume whose bank differs in size or precision, or a checkpoint without a bank, as a wrong option', async () => {
    const { resume: _r, ...resumed } = parseTrainConfig(['--resume', '--out', straight]);
    await expect(runTraining({ ...resumed, steps: 8, 'bank-size': 32 }, { resume: true })).rejects.toThrow(ConfigError);
    await expect(runTraining({ ...resumed, steps: 8, 'bank-size': 32 }, { resume: true })).rejects.toThrow(
      "--bank-size 32 (the checkpoint's bank holds 16). Resume with the checkpoint's settings, or start a new run",
    );
    await expect(runTraining({ ...resumed, steps: 8, 'bank-precision': 'float16' }, { resume: true })).rejects.toThrow(
      "--bank-precision float16 (the checkpoint's bank is float32)",
    );
    const bare = mkdtempSync(join(tmpdir(), 'densestream-softrank-nobank-'));
    cpSync(join(straight, 'checkpoint'), join(bare, 'checkpoint'), { recursive: true });
    rmSync(join(bare, 'checkpoint', 'positives.json'));
    await expect(runTraining({ ...resumed, out: bare, steps: 8 }, { resume: true })).rejects.toThrow(
      'holds no embedding bank (positives.json)',
    );
  });
});

describe('Reclustering', () => {
  const unit = (i: number, dims: number) => Float32Array.from({ length: dims }, (_, j) => (j === i % dims ? 1 : 0.1 * j));

  it('serves a clustering to the anchors of the batches from its step + lag on, waiting for it if need be', async () => {
    const dims = 4;
    const r = new Reclustering({ dims, bankSize: 8, clusters: 2, every: 2, lag: 1, anchorsPerStep: 2, steps: 10 });
    // Anchors 0–5 are batches 0–2: no clustering serves them (the first is after step 2, from batch 3).
    const early = await Promise.all(Array.from({ length: 6 }, () => r.nextAnchor().clustering));
    expect(early).toEqual(Array(6).fill(undefined));
    const waiting = r.nextAnchor().clustering; // batch 3: waits for the clustering after step 2
    let settled = false;
    void waiting.then(() => {
      settled = true;
    });
    const embeddings = (step: number) => {
      const ids = Array.from({ length: 4 }, (_, i) => `s${4 * step + i}`);
      const rows = new Float32Array(4 * dims);
      ids.forEach((_, i) => rows.set(unit(4 * step + i, dims), i * dims));
      return { ids, rows, dims };
    };
    await r.afterStep(1, embeddings(0), embeddings(0).ids);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);
    await r.afterStep(2, embeddings(1), embeddings(1).ids);
    const index = await waiting;
    expect(index?.size).toBe(8);
    expect(r.stats()).toMatchObject({ reclusters: 1, bank: 8, firstClusteredStep: 4 });
    r.close();
  });

  it('lets waiting anchors go on when closed, and refuses more clusters than a quarter of the bank', async () => {
    const r = new Reclustering({ dims: 4, bankSize: 8, clusters: 2, every: 1, lag: 1, anchorsPerStep: 1, steps: 10 });
    r.nextAnchor(); // batch 0
    const waiting = r.nextAnchor().clustering; // batch 1: waits for the clustering after step 1 … which never comes
    r.close();
    await expect(waiting).resolves.toBeUndefined();
    expect(() => new Reclustering({ dims: 4, bankSize: 8, clusters: 3, every: 1, anchorsPerStep: 1, steps: 10 })).toThrow(
      '3 clusters need a bank of at least 12 embeddings, got 8',
    );
  });
});
