import * as tf from '@tensorflow/tfjs';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseTrainConfig, runTraining } from '../pipelines/train.js';
import { Reclustering } from '../train/recluster.js';

// The built CLI, as a user runs it (`npm test` builds first); the k-means worker is its compiled twin too.
const CLI = new URL('../dist/pipelines/cli.js', import.meta.url).pathname;
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
/** The CLI in the background, so two runs share the machine's two cores. */
function cliAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/**
 * 16 scenes, 4 pairs a batch: epoch 0 is steps 1–4 (every anchor new, so its own positive); the
 * bank is clustered after step 4 and serves from step 4 + ⌊4/2⌋ + 1 = 7, when epoch 1's anchors,
 * all clustered, get positives from their clusters.
 */
const SMALL = ['--method', 'softrank', '--data', 'scenes:32:16', '--size', '32', '--batch', '8', '--steps', '12', '--recluster-every', '4', '--clusters', '4', '--threads', '1', '--log-every', '1'];

interface Summary {
  method: string;
  steps: number;
  positives: { reclusters: number; clusters: number; bank: number; pairs: number; selfPositiveFraction: number; firstClusteredStep: number | null; selfPositiveFractionAfterClustering: number | null };
}
interface Metrics { step: number; loss: number; parts: Record<string, number> }

const metricsOf = (out: string): Metrics[] => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Metrics);

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
    expect(summary).toMatchObject({ method: 'softrank', steps: 12, positives: { clusters: 4, bank: 16, pairs: 48, firstClusteredStep: 7 } });
    expect(summary.positives.reclusters).toBeGreaterThanOrEqual(1);
    expect(summary.positives.selfPositiveFractionAfterClustering).not.toBeNull();
    expect(summary.positives.selfPositiveFractionAfterClustering!).toBeLessThan(1);

    const metrics = metricsOf(out);
    expect(metrics.map((m) => m.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(metrics.every((m) => Number.isFinite(m.loss) && Number.isFinite(m.parts['image']) && Number.isFinite(m.parts['patch']))).toBe(true);
    // Before any clustering every anchor is its own positive; steps 7–12 are served by one.
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
    expect(bad.stderr).toContain('--batch: softrank trains on (anchor, positive) pairs, --batch counting both: expected an even number ≥ 4, got 7');
    expect(bad.stdout).toBe('');
  });

  it.each([
    [['--batch', '2'], '--batch: softrank trains on (anchor, positive) pairs'],
    [['--data', 'tar:x-{0..1}.tar'], 'needs a random-access source (scenes, dir:PATH, fashion-mnist), not tar shards'],
    [['--data', 'parquet:views'], 'not precomputed views'],
    [['--clusters', '50', '--bank-size', '100'], '--clusters 50: needs at least 200 embeddings to cluster (4 per cluster), but --bank-size is 100'],
  ])('refuses %j with softrank', (args, message) => {
    expect(() => parseTrainConfig(['--method', 'softrank', ...args])).toThrow(ConfigError);
    expect(() => parseTrainConfig(['--method', 'softrank', ...args])).toThrow(message);
  });

  it('refuses more clusters than a quarter of a small source before training', async () => {
    const { resume: _r, ...c } = parseTrainConfig(['--method', 'softrank', '--data', 'scenes:32:16', '--clusters', '5', '--threads', '1', '--out', mkdtempSync(join(tmpdir(), 'densestream-softrank-bad-'))]);
    await expect(runTraining(c)).rejects.toThrow('--clusters 5: needs at least 20 embeddings to cluster (4 per cluster), but the bank holds 16 (the size of --data scenes:32:16)');
  });

  it('refuses the clustering options with another method', () => {
    expect(() => parseTrainConfig(['--method', 'densecl', '--clusters', '10', '--recluster-every', '5'])).toThrow("--recluster-every, --clusters: clustering positives are --method softrank's; drop them with --method densecl");
  });

  it('keeps tf.memory().numTensors flat, and resumes (bank empty again: self positives until the next clustering)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-softrank-resume-'));
    const { resume: _r, ...c } = parseTrainConfig([...SMALL, '--out', out]);
    const tensors: number[] = [];
    const first = await runTraining(c, { shouldStop: (done) => done === 8, onLog: () => tensors.push(tf.memory().numTensors) });
    expect(first.steps).toBe(8);
    expect(new Set(tensors.slice(1)).size).toBe(1);
    expect(first.positives?.reclusters).toBeGreaterThanOrEqual(1);

    const { resume, ...resumed } = parseTrainConfig(['--resume', '--out', out]);
    expect(resume).toBe(true);
    const second = await runTraining(resumed, { resume: true });
    expect(second.steps).toBe(12);
    expect(second.losses.every(Number.isFinite)).toBe(true);
    // Steps 9–12: the bank starts empty again, and no clustering falls between step 8 and the end (one at step 12 would serve nothing).
    expect(second.positives).toMatchObject({ pairs: 16, selfPositiveFraction: 1, firstClusteredStep: null });
    expect(existsSync(join(out, 'checkpoint', 'weights.bin'))).toBe(true);
  });
});

describe('Reclustering', () => {
  const unit = (i: number, dims: number) => Float32Array.from({ length: dims }, (_, j) => (j === i % dims ? 1 : 0.1 * j));

  it('serves a clustering to the anchors of the batches from its step + lag on, waiting for it if need be', async () => {
    const dims = 4;
    const r = new Reclustering({ dims, bankSize: 8, clusters: 2, every: 2, lag: 1, anchorsPerStep: 2, steps: 10 });
    // Anchors 0–5 are batches 0–2: no clustering serves them (the first is after step 2, from batch 3).
    const early = await Promise.all(Array.from({ length: 6 }, () => r.clusteringForNextAnchor()));
    expect(early).toEqual(Array(6).fill(undefined));
    const waiting = r.clusteringForNextAnchor(); // batch 3: waits for the clustering after step 2
    let settled = false;
    void waiting.then(() => { settled = true; });
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
    r.clusteringForNextAnchor();
    const waiting = r.clusteringForNextAnchor(); // batch 1: waits for the clustering after step 1 … which never comes
    r.close();
    await expect(waiting).resolves.toBeUndefined();
    expect(() => new Reclustering({ dims: 4, bankSize: 8, clusters: 3, every: 1, anchorsPerStep: 1, steps: 10 })).toThrow('3 clusters need a bank of at least 12 embeddings, got 8');
  });
});
