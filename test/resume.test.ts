import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTensors } from '../models/weights-io.js';
import { runTraining } from '../pipelines/train.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { cosineWithWarmup } from '../train/schedule.js';
import { CLI } from './helpers/cli.js';

/** All saved weights of a run's checkpoint, by name. */
function weights(out: string): Map<string, Float32Array | Int32Array | Uint8Array> {
  return new Map(readTensors(join(out, 'checkpoint'), '').map(({ name, tensor }) => [name, tensor.dataSync()]));
}

describe('resume', () => {
  it.each(['sgd', 'adamw', 'lars'])(
    'continues exactly with %s: 6 steps straight and 3 steps + resume for 3 give the same weights within 1e-5',
    async (optimizer) => {
      const flags = [
        '--steps',
        '6',
        '--batch',
        '4',
        '--size',
        '32',
        '--queue',
        '16',
        '--threads',
        '2',
        '--warmup',
        '2',
        '--checkpoint-every',
        '100',
        '--method',
        'densecl',
        // The dense term starts after the resume point: a resumed run must count steps from the start.
        '--dense-warmup',
        '4',
        '--optimizer',
        optimizer,
        // Pinned: auto's timing may pick the other path in the straight run, and the two paths'
        // pixels differ within interpolation tolerance, not bit for bit.
        '--augment',
        'backend',
      ];
      const straight = mkdtempSync(join(tmpdir(), 'densestream-straight-'));
      const split = mkdtempSync(join(tmpdir(), 'densestream-split-'));
      const { resume: _r1, ...a } = parseTrainConfig([...flags, '--out', straight]);
      const { resume: _r2, ...b } = parseTrainConfig([...flags, '--out', split]);
      await runTraining(a);
      const first = await runTraining(b, { hooks: [{ shouldStop: (done) => done === 3 }] }); // interrupted after 3 steps
      expect(first.steps).toBe(3);
      const { resume, ...resumed } = parseTrainConfig(['--resume', '--out', split]);
      expect(resume).toBe(true);
      expect(resumed.steps).toBe(6);
      const second = await runTraining(resumed, { resume: true });
      expect(second.steps).toBe(6);

      const wa = weights(straight);
      const wb = weights(split);
      expect([...wb.keys()]).toEqual([...wa.keys()]);
      let worst = 0;
      for (const [name, va] of wa) {
        const vb = wb.get(name)!;
        for (let i = 0; i < va.length; i++) worst = Math.max(worst, Math.abs((va[i] as number) - (vb[i] as number)));
      }
      expect(worst).toBeLessThanOrEqual(1e-5);
    },
  );

  it('refuses --resume with other options, or without a checkpoint', () => {
    expect(() => parseTrainConfig(['--resume', '--lr', '0.1', '--steps', '10', '--out', '/tmp/x'])).toThrow(
      '--resume takes the configuration from the checkpoint (only --steps may extend it); drop --lr',
    );
    expect(() => parseTrainConfig(['--resume', '--out', join(tmpdir(), 'densestream-nothing-here')])).toThrow('--resume: no checkpoint in');
  });

  it('defaults AdamW to lr 1e-3 unless --lr is given (the SGD default of 0.05 would blow Adam up)', () => {
    expect(parseTrainConfig(['--optimizer', 'adamw']).lr).toBe(1e-3);
    expect(parseTrainConfig(['--optimizer', 'adamw', '--lr', '0.01']).lr).toBe(0.01);
    expect(parseTrainConfig([]).lr).toBe(0.05);
  });
});

const TINY = [
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
  '--log-every',
  '1',
  '--augment',
  'backend',
];

const metricSteps = (out: string): number[] =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { step: number }).step);
const checkpointStep = (out: string): number =>
  (JSON.parse(readFileSync(join(out, 'checkpoint', 'weights.json'), 'utf8')) as { meta: { step: number } }).meta.step;

/** Starts `train`, and once `metrics.jsonl` holds `lines` lines sends `signal`; resolves with the exit. */
function trainUntil(out: string, steps: number, lines: number, signal: NodeJS.Signals): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, [CLI, 'train', ...TINY, '--steps', `${steps}`, '--checkpoint-every', '5', '--out', out], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  const timer = setInterval(() => {
    try {
      if (metricSteps(out).length >= lines) {
        clearInterval(timer);
        child.kill(signal);
      }
    } catch {
      /* no metrics yet */
    }
  }, 20);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ code, stdout });
    }),
  );
}

describe('train stopped from outside', () => {
  it('after a SIGKILL, --resume cuts metrics.jsonl back to the checkpoint: every step is logged once', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-killed-'));
    const killed = await trainUntil(out, 30, 7, 'SIGKILL');
    expect(killed.code).toBeNull(); // killed, not finished
    const logged = metricSteps(out);
    expect(Math.max(...logged)).toBeGreaterThan(checkpointStep(out)); // steps past the checkpoint were logged, and will run again
    const resumed = spawnSync(process.execPath, [CLI, 'train', '--resume', '--out', out], { encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(metricSteps(out)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it('Ctrl-C checkpoints after the step in hand and exits 130; a resumed run finishes, and resuming a finished run says so', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-interrupted-'));
    const stopped = await trainUntil(out, 12, 2, 'SIGINT');
    expect(stopped.code).toBe(130);
    const summary = JSON.parse(stopped.stdout) as { interrupted: boolean; steps: number };
    expect(summary.interrupted).toBe(true);
    expect(checkpointStep(out)).toBe(summary.steps);
    expect(Math.max(...metricSteps(out))).toBe(summary.steps);

    const finished = spawnSync(process.execPath, [CLI, 'train', '--resume', '--out', out], { encoding: 'utf8' });
    expect(finished.status, finished.stderr).toBe(0);
    expect(metricSteps(out)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const again = spawnSync(process.execPath, [CLI, 'train', '--resume', '--out', out], { encoding: 'utf8' });
    expect(again.status).toBe(0);
    expect(again.stdout).toBe('');
    expect(again.stderr).toContain(`train --resume: the run in ${out} is complete (12 of 12 steps); nothing to do`);

    // --steps extends a run (its cosine schedule re-planned to the new end), never shortens it
    const shorter = spawnSync(process.execPath, [CLI, 'train', '--resume', '--steps', '10', '--out', out], { encoding: 'utf8' });
    expect(shorter.status).toBe(2);
    expect(shorter.stderr).toContain(`--steps 10: the run in ${out} has done 12 steps; --resume --steps extends it to more`);
    const longer = spawnSync(process.execPath, [CLI, 'train', '--resume', '--steps', '14', '--out', out], { encoding: 'utf8' });
    expect(longer.status, longer.stderr).toBe(0);
    expect(metricSteps(out)).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
    const lrs = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { lr: number }).lr);
    expect(lrs[12]).toBeCloseTo(cosineWithWarmup(12, 14, 0.05, 14), 8); // the schedule of a 14-step run: warm-up min(20, 14) steps
    expect(checkpointStep(out)).toBe(14);
  });
});
