import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { cli } from './helpers/cli.js';

// `densestream train` as a user runs it: the run's files, its folder, where its views are cut, its encoders.
describe('densestream train from the CLI', () => {
  it('trains a few steps from the CLI and leaves a checkpoint, metrics and a summary line', () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-train-'));
    const run = cli(
      'train',
      '--method',
      'densecl',
      '--steps',
      '3',
      '--batch',
      '4',
      '--size',
      '32',
      '--queue',
      '16',
      '--out',
      out,
      '--log-every',
      '1',
      '--threads',
      '2',
      '--attention-view',
      '--align-weight',
      '0.5',
      '--workers',
      '0', // the main-thread path end to end; the other runs here use the default pixel worker
    );
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as { method: string; steps: number; imagesPerSec: number };
    expect(summary).toMatchObject({ method: 'densecl', steps: 3 });
    expect(summary.imagesPerSec).toBeGreaterThan(0);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss: number; parts: Record<string, number> });
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(Object.keys(metrics[0]!.parts).sort()).toEqual(['align', 'dense', 'global']); // the attention view's align term is on
    expect(metrics.every((m) => Number.isFinite(m.loss))).toBe(true);
    expect(existsSync(join(out, 'checkpoint', 'weights.bin'))).toBe(true);
    const meta = JSON.parse(readFileSync(join(out, 'checkpoint', 'weights.json'), 'utf8')) as {
      meta: { step: number; config: { steps: number } };
    };
    expect(meta.meta.step).toBe(3);
    expect(meta.meta.config.steps).toBe(3);
  });

  it("refuses to train into a folder that holds a run, before any work; --overwrite replaces the run and keeps the user's other files", () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-rerun-'));
    // --augment pinned: these runs are about the folder, and auto's probe would double their time.
    const tiny = (knn: string[] = ['--knn-every', '0']) => [
      '--steps',
      '1',
      '--batch',
      '4',
      '--size',
      '32',
      '--queue',
      '16',
      ...knn,
      '--threads',
      '2',
      '--augment',
      'backend',
      '--out',
      out,
    ];
    expect(cli('train', ...tiny()).status).toBe(0);
    writeFileSync(join(out, 'eval.json'), '{"knn":{"step":1}}\n'); // scores of the first run
    writeFileSync(join(out, 'notes.txt'), 'mine\n');
    const metricsBefore = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    const weightsBefore = readFileSync(join(out, 'checkpoint', 'weights.bin'));

    const again = cli('train', ...tiny(), '--seed', '5');
    expect(again.status).toBe(2);
    expect(again.stderr).toContain(
      `--out ${out} already holds a run (checkpoint/, metrics.jsonl, skipped.jsonl, eval.json): continue it with --resume, replace it with --overwrite, or give another --out`,
    );
    expect(again.stderr).not.toContain('backend:'); // refused before the backend was even loaded
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).toBe(metricsBefore);
    expect(readFileSync(join(out, 'checkpoint', 'weights.bin')).equals(weightsBefore)).toBe(true);

    const both = cli('train', '--resume', '--overwrite', '--out', out);
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('--resume continues the run in --out and --overwrite replaces it; give one');

    // --overwrite replaces a run only once the new one's every option holds: a kNN monitor set
    // that cannot be opened (checked after the data and the backend) leaves the old run whole.
    const refused = cli('train', ...tiny(['--knn-every', '1', '--knn-data', `dir:${join(out, 'missing')}`]), '--overwrite');
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('cannot list the folder');
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).toBe(metricsBefore);
    expect(readFileSync(join(out, 'checkpoint', 'weights.bin')).equals(weightsBefore)).toBe(true);
    expect(existsSync(join(out, 'eval.json'))).toBe(true);

    const replaced = cli('train', ...tiny(), '--seed', '5', '--overwrite');
    expect(replaced.status, replaced.stderr).toBe(0);
    expect(replaced.stderr).toContain(
      `--overwrite: removed the previous run's checkpoint/, metrics.jsonl, skipped.jsonl, eval.json from ${out}`,
    );
    expect(existsSync(join(out, 'eval.json'))).toBe(false); // it scored the old checkpoint
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine\n');
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1); // the new run's line only
    const meta = JSON.parse(readFileSync(join(out, 'checkpoint', 'weights.json'), 'utf8')) as { meta: { config: { seed: number } } };
    expect(meta.meta.config.seed).toBe(5);
  });

  it.runIf(existsSync('/usr/share/datasets/fashion-mnist'))(
    'trains on fashion-mnist from the CLI (grey 28×28 expanded to RGB, views at 32 px)',
    () => {
      const out = mkdtempSync(join(tmpdir(), 'densestream-fm-'));
      const run = cli(
        'train',
        '--data',
        'fashion-mnist',
        '--method',
        'mocov2',
        '--steps',
        '2',
        '--batch',
        '8',
        '--size',
        '32',
        '--queue',
        '16',
        '--out',
        out,
        '--threads',
        '2',
      );
      expect(run.status, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ method: 'mocov2', steps: 2 });
    },
  );

  it.runIf(existsSync('/usr/share/datasets/fashion-mnist'))(
    "trains hapicl on fashion-mnist with --masks gt: the garments' silhouettes are its ground truth",
    async () => {
      const out = mkdtempSync(join(tmpdir(), 'densestream-fm-gt-'));
      const common = ['--data', 'fashion-mnist', '--method', 'hapicl', '--steps', '2', '--batch', '8', '--queue', '16', '--knn-every', '0'];
      const run = cli('train', ...common, '--masks', 'gt', '--out', out, '--threads', '2');
      expect(run.status, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ method: 'hapicl', steps: 2 });
      // A folder of photos has none: refused by name, not trained on all-background masks.
      const photos = mkdtempSync(join(tmpdir(), 'densestream-gt-photos-'));
      await sharp({ create: { width: 40, height: 40, channels: 3, background: '#808080' } })
        .jpeg()
        .toFile(join(photos, 'a.jpg'));
      const refused = cli('train', '--data', `dir:${photos}`, ...common.slice(2), '--masks', 'gt', '--out', join(out, 'photos'));
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toMatch(/--masks gt: sample .* has no ground truth \(only scenes and Fashion-MNIST carry it\)/);
    },
  );

  it('cuts views on the backend with --augment backend, says which path auto measured cheaper, and keeps it on resume', () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-augment-'));
    const common = ['--data', 'scenes:32:64', '--size', '32', '--batch', '8', '--queue', '16', '--knn-every', '0', '--threads', '2'];
    const backend = cli('train', ...common, '--steps', '2', '--augment', 'backend', '--out', join(out, 'backend'));
    expect(backend.status, backend.stderr).toBe(0);
    expect(backend.stderr).toContain('augment: backend (asked for)');
    expect(JSON.parse(backend.stdout)).toMatchObject({ augment: 'backend', steps: 2 });
    const auto = cli('train', ...common, '--steps', '2', '--out', join(out, 'auto'));
    expect(auto.status, auto.stderr).toBe(0);
    const chosen =
      /augment: (cpu|backend) \(auto: [\d.]+ ms of CPU per image on the backend, [\d.]+ on the CPU path, measured on 32 images\)/.exec(
        auto.stderr,
      );
    expect(chosen, auto.stderr).not.toBeNull();
    expect(JSON.parse(auto.stdout)).toMatchObject({ augment: chosen![1] });
    // the checkpoint holds the path auto took, and a resumed run keeps it without measuring again
    const meta = JSON.parse(readFileSync(join(out, 'auto', 'checkpoint', 'weights.json'), 'utf8')) as {
      meta: { config: { augment: string } };
    };
    expect(meta.meta.config.augment).toBe(chosen![1]);
    // (the run is complete at 2 steps: --steps extends it)
    const resumed = cli('train', '--resume', '--steps', '4', '--out', join(out, 'auto'));
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`augment: ${chosen![1]} (the run's, from its checkpoint)`);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ steps: 4 });
  });

  it('refuses a wrong --augment, and --augment with precomputed views, before any work', () => {
    const wrong = cli('train', '--augment', 'gpu', '--steps', '1');
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toContain('--augment');
    expect(wrong.stderr).toContain('cpu|backend|auto');
    const parquet = cli('train', '--data', 'parquet:/nowhere', '--augment', 'backend', '--steps', '1');
    expect(parquet.status).toBe(2);
    expect(parquet.stderr).toContain('--augment: --data parquet:/nowhere holds views cut by precompute');
  });

  it('measures both paths on images of several sizes under --augment auto, and cuts them on the backend size by size', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'densestream-augment-dir-'));
    for (const [i, w] of [40, 48, 56, 64].entries()) {
      await sharp({ create: { width: w, height: 40, channels: 3, background: { r: 40 * i, g: 90, b: 200 - 40 * i } } })
        .png()
        .toFile(join(dir, `${i}.png`));
    }
    const trainOnDir = (out: string, ...extra: string[]) =>
      cli(
        'train',
        '--data',
        `dir:${dir}`,
        '--size',
        '32',
        '--batch',
        '4',
        '--steps',
        '1',
        '--queue',
        '8',
        '--method',
        'mocov2',
        '--out',
        out,
        '--threads',
        '2',
        ...extra,
      );
    const run = trainOnDir(join(dir, 'run'));
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /augment: (cpu|backend) \(auto: [\d.]+ ms of CPU per image on the backend, [\d.]+ on the CPU path, measured on 4 images\)/,
    );
    const forced = trainOnDir(join(dir, 'forced'), '--augment', 'backend');
    expect(forced.status, forced.stderr).toBe(0);
    expect(forced.stderr).toContain('augment: backend (asked for)');
  });

  it('trains --epochs E as whole batches over the source, and refuses --epochs with --steps', () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-cli-epochs-'));
    const run = cli(
      'train',
      '--data',
      'scenes:32:40',
      '--size',
      '32',
      '--epochs',
      '2',
      '--batch',
      '8',
      '--queue',
      '16',
      '--knn-every',
      '0',
      '--out',
      out,
      '--threads',
      '2',
      '--augment',
      'backend',
    );
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ steps: 10 }); // 2 × 40 images / 8
    const both = cli('train', '--epochs', '2', '--steps', '3');
    expect(both.status).toBe(2);
    expect(both.stderr).toContain("--epochs and --steps both set the run's length");
  });

  it('trains the ViT encoder from the CLI and exports its patch tokens as the dense grid', () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-cli-vit-'));
    const run = cli(
      'train',
      '--encoder',
      'vit',
      '--method',
      'mocov2',
      '--data',
      'scenes:32:40',
      '--size',
      '32',
      '--steps',
      '2',
      '--batch',
      '8',
      '--queue',
      '16',
      '--out',
      out,
      '--threads',
      '2',
      '--augment',
      'backend',
    );
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ encoder: 'vit', steps: 2 });
    const features = join(out, 'features');
    const exported = cli('export', '--quiet', '--checkpoint', out, '--data', 'scenes:32:8', '--out', features, '--format', 'arrow');
    expect(exported.status, exported.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(join(features, 'manifest.json'), 'utf8')) as { config: { encoder: string } };
    expect(manifest.config.encoder).toBe('vit');
    const refused = cli('train', '--encoder', 'vit', '--preset', 'multicrop');
    expect(refused.status).toBe(2);
  });
});
