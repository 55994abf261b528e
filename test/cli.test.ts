import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { relaxedSimdSupported } from '../models/relaxed-simd.js';
import { switchOnRelaxedSimd } from '../pipelines/relaxed-simd-flag.js';
import { CLI, cli } from './helpers/cli.js';

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
    ['DENSESTREAM_RELAXED_SIMD', 'yes', 'expected 0 (off) or 1 (required), got "yes"'],
    ['DENSESTREAM_POOL_SPIN_US', '0.2', 'expected whole microseconds, 0–100000, got "0.2"'],
  ])('refuses a wrong %s with exit code 2 before any command runs, writing nothing', (name, value, message) => {
    const out = join(mkdtempSync(join(tmpdir(), 'densestream-env-')), 'run');
    const run = spawnSync(process.execPath, [CLI, 'train', '--steps', '1', '--out', out], {
      encoding: 'utf8',
      env: { ...process.env, [name]: value },
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toBe(`densestream train: ${name}: ${message}\n`);
    expect(existsSync(out)).toBe(false);
  });

  it('runs the relaxed-SIMD kernels on Node 20 too, setting the flag itself; DENSESTREAM_RELAXED_SIMD=0 keeps the SIMD build', () => {
    // The vitest process has no flag on Node 20, so these children start as a user's `densestream` does.
    const build = (env: NodeJS.ProcessEnv) => {
      const run = spawnSync(process.execPath, [CLI, 'backend', '--backend', 'wasm'], { encoding: 'utf8', env: { ...process.env, ...env } });
      expect(run.status).toBe(0);
      return (JSON.parse(run.stdout) as { kernelBuild: string }).kernelBuild;
    };
    expect(build({ DENSESTREAM_RELAXED_SIMD: '' })).toBe('relaxed-simd');
    expect(build({ DENSESTREAM_RELAXED_SIMD: '1' })).toBe('relaxed-simd');
    expect(build({ DENSESTREAM_RELAXED_SIMD: '0' })).toBe('simd');
  });

  it('sets the flag only on the runtimes that need it and only when allowed', () => {
    const before = relaxedSimdSupported();
    // None of these touch this process's flags: kept off, too old, or shipped already.
    expect(switchOnRelaxedSimd('0', '20.11.0')).toBe(before);
    expect(switchOnRelaxedSimd(undefined, '18.19.0')).toBe(before);
    expect(switchOnRelaxedSimd(undefined, '22.0.0')).toBe(before);
    expect(relaxedSimdSupported()).toBe(before);
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
});
