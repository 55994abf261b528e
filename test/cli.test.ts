import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';

// The built CLI, as a user runs it (`npm test` builds first).
const CLI = new URL('../dist/pipelines/cli.js', import.meta.url).pathname;
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

describe('densestream CLI', () => {
  it('prints the package version', () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const run = cli('--version');
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe(version);
  });

  it('lists only commands that exist in --help', () => {
    const run = cli('--help');
    expect(run.status).toBe(0);
    const commands = [...run.stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]);
    expect(commands).toEqual(['backend', 'train', 'precompute', 'export', 'eval', 'preview', 'report']);
  });

  it('reports the backend it took as JSON, and why it passed over the others only with --verbose', () => {
    const run = cli('backend', '--threads', '2');
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ backend: 'wasm', threads: 2 });
    expect(JSON.parse(run.stdout).passedOver[0]).toMatch(/^@tensorflow\/tfjs-node-gpu: /);
    expect(run.stderr).toContain('backend: took wasm');
    expect(run.stderr).not.toContain('passed over');
    const verbose = cli('backend', '--threads', '2', '--verbose');
    expect(verbose.stderr).toContain('backend: passed over @tensorflow/tfjs-node-gpu');
  });

  it.each([
    [['backend', '--backend', 'gpu'], '--backend: expected one of auto|tensorflow|webgpu|wasm|cpu, got "gpu"'],
    [['backend', '--threads', 'abc'], '--threads: expected an integer ≥ 1, at most 8, got "abc"'],
    [['backend', '--threads', '9'], '--threads: expected an integer ≥ 1, at most 8, got "9"'],
  ])('refuses %j with exit code 2 before any work: %s', (args, message) => {
    const run = cli(...args);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stdout).toBe('');
  });

  it.each(['train', 'precompute', 'export', 'eval', 'report', 'preview', 'backend'])(
    'prints %s --help from its schema: every option with its default',
    (command) => {
      const run = cli(command, '--help');
      expect(run.status).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^densestream ${command}: `));
      expect(run.stdout).toContain('-h, --help');
      expect(run.stderr).toBe('');
    },
  );

  it('suggests the nearest command for a mistyped one', () => {
    const run = cli('trian');
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('unknown command "trian" (did you mean train?)');
  });

  it('refuses an unknown command with exit code 2', () => {
    const run = cli('frobnicate');
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('unknown command "frobnicate"');
  });

  it('writes a preview contact sheet of scenes: one row per image, each with image, attention, mask and two views', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-preview-'));
    const run = cli('preview', '--data', 'scenes', '--out', out, '--count', '3', '--size', '48');
    expect(run.status, run.stderr).toBe(0);
    const sheet = join(out, 'preview-000.png');
    expect(run.stdout.trim()).toBe(sheet);
    const meta = await sharp(sheet).metadata();
    // 3 rows of 160 px plus gaps; 5 square tiles of 160 px plus gaps
    expect(meta.height).toBe(3 * 164 + 4);
    expect(meta.width).toBe(5 * 164 + 4);
    expect(existsSync(`${sheet}.partial`)).toBe(false);
  });

  it('refuses a bad preview option before any work', () => {
    const never = join(mkdtempSync(join(tmpdir(), 'densestream-preview-')), 'never');
    const run = cli('preview', '--out', never, '--masks', 'magic');
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('--masks: expected one of saliency|kmeans, got "magic"');
    expect(existsSync(never)).toBe(false);
  });

  it.each([
    [['train', '--stpes', '10'], 'unknown option --stpes (did you mean --steps?)'],
    [['train', '--lr', '-1'], '--lr: a value starting with "-" must be attached, as --lr=VALUE'],
    [['train', '--lr=-1'], '--lr: expected a number ≥ 0, got "-1"'],
    [['export', '--data', 'scenes'], '--out is required'],
    [['eval', '--checkpoint', 'random', '--protocl', 'knn'], 'unknown option --protocl (did you mean --protocol?)'],
    [['report'], 'RUN is required'],
    [['preview', '--out', '/tmp/x', 'extra'], "Unexpected argument 'extra'"],
    [['precompute', '--data', 'scenes', '--out', '/tmp/x', '--views', '3'], "--views: expected a multiple of the mocov2 preset's 2 views"],
    [['train', '--steps', 'ten'], '--steps: expected an integer ≥ 1, got "ten"'],
    [['train', '--method', 'simclr'], '--method: expected one of densecl|mocov2|hapicl|softrank, got "simclr"'],
  ])('refuses %j with exit code 2 before any work', (args, message) => {
    const run = cli(...args);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it.each(['train', 'precompute', 'export', 'preview'])(
    'refuses %s of data that cannot be opened with exit code 2, before a previous run is touched',
    (command) => {
      const out = mkdtempSync(join(tmpdir(), 'densestream-nodata-'));
      const previous = join(out, 'metrics.jsonl'); // a previous run's file, which --overwrite would remove
      writeFileSync(previous, '{"step":1}\n');
      const missing = join(out, 'no-such-folder');
      const args = command === 'train' ? ['--steps', '1', '--overwrite'] : [];
      const run = cli(command, '--data', `dir:${missing}`, '--out', out, ...args);
      expect(run.status).toBe(2);
      expect(run.stderr).toContain(`dir:${missing}: cannot list the folder`);
      expect(existsSync(previous)).toBe(true);
      // train loads its backend only after the data opened (export's command loads it first: a second).
      if (command === 'train') expect(run.stderr).not.toContain('backend: took');
    },
  );

  it('refuses an unknown key or a wrong type in --config, naming it, with exit code 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'densestream-config-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ steps: 5, learning_rate: 0.1 }));
    const run = cli('train', '--config', bad);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('unknown option "learning_rate"');
    writeFileSync(bad, JSON.stringify({ steps: '5' }));
    expect(cli('train', '--config', bad).stderr).toContain('steps: expected an integer ≥ 1, got "5"');
    writeFileSync(bad, JSON.stringify({ 'attention-view': 'yes' }));
    expect(cli('train', '--config', bad).stderr).toContain('attention-view: expected true or false, got "yes"');
  });

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
    const tiny = [
      '--steps',
      '1',
      '--batch',
      '4',
      '--size',
      '32',
      '--queue',
      '16',
      '--knn-every',
      '0',
      '--threads',
      '2',
      '--augment',
      'backend',
      '--out',
      out,
    ];
    expect(cli('train', ...tiny).status).toBe(0);
    writeFileSync(join(out, 'eval.json'), '{"knn":{"step":1}}\n'); // scores of the first run
    writeFileSync(join(out, 'notes.txt'), 'mine\n');
    const metricsBefore = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    const weightsBefore = readFileSync(join(out, 'checkpoint', 'weights.bin'));

    const again = cli('train', ...tiny, '--seed', '5');
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
    const monitorless = [...tiny.slice(0, 8), '--knn-every', '1', '--knn-data', `dir:${join(out, 'missing')}`, ...tiny.slice(10)];
    const refused = cli('train', ...monitorless, '--overwrite');
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('cannot list the folder');
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).toBe(metricsBefore);
    expect(readFileSync(join(out, 'checkpoint', 'weights.bin')).equals(weightsBefore)).toBe(true);
    expect(existsSync(join(out, 'eval.json'))).toBe(true);

    const replaced = cli('train', ...tiny, '--seed', '5', '--overwrite');
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

  it('sends images that may differ in size to the CPU under --augment auto, without measuring', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'densestream-augment-dir-'));
    for (const [i, w] of [40, 48, 56, 64].entries()) {
      await sharp({ create: { width: w, height: 40, channels: 3, background: { r: 40 * i, g: 90, b: 200 - 40 * i } } })
        .png()
        .toFile(join(dir, `${i}.png`));
    }
    const run = cli(
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
      join(dir, 'run'),
      '--threads',
      '2',
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toContain('augment: cpu (auto: the images may differ in size');
    const forced = cli(
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
      '--augment',
      'backend',
      '--out',
      join(dir, 'forced'),
      '--threads',
      '2',
    );
    expect(forced.status).toBe(1);
    expect(forced.stderr).toMatch(/sample \S+ is \d+×40, sample \S+ \d+×40 \(use --augment cpu for images of mixed sizes\)/);
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
