import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTensors } from '../models/weights-io.js';
import { parseTrainConfig, runTraining } from '../pipelines/train.js';

/** All saved weights of a run's checkpoint, by name. */
function weights(out: string): Map<string, Float32Array | Int32Array | Uint8Array> {
  return new Map(readTensors(join(out, 'checkpoint'), '').map(({ name, tensor }) => [name, tensor.dataSync()]));
}

describe('resume', () => {
  it.each(['sgd', 'adamw', 'lars'])('continues exactly with %s: 6 steps straight and 3 steps + resume for 3 give the same weights within 1e-5', async (optimizer) => {
    const flags = ['--steps', '6', '--batch', '4', '--size', '32', '--queue', '16', '--threads', '2', '--warmup', '2', '--checkpoint-every', '100', '--method', 'densecl', '--optimizer', optimizer,
      // Pinned: auto's timing may pick the other path in the straight run, and the two paths'
      // pixels differ within interpolation tolerance, not bit for bit.
      '--augment', 'backend'];
    const straight = mkdtempSync(join(tmpdir(), 'densestream-straight-'));
    const split = mkdtempSync(join(tmpdir(), 'densestream-split-'));
    const { resume: _r1, ...a } = parseTrainConfig([...flags, '--out', straight]);
    const { resume: _r2, ...b } = parseTrainConfig([...flags, '--out', split]);
    await runTraining(a);
    const first = await runTraining(b, { shouldStop: (done) => done === 3 }); // interrupted after 3 steps
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
  });

  it('refuses --resume with other options, or without a checkpoint', () => {
    expect(() => parseTrainConfig(['--resume', '--steps', '10', '--out', '/tmp/x'])).toThrow('--resume takes the configuration from the checkpoint; drop --steps');
    expect(() => parseTrainConfig(['--resume', '--out', join(tmpdir(), 'densestream-nothing-here')])).toThrow('--resume: no checkpoint in');
  });

  it('defaults AdamW to lr 1e-3 unless --lr is given (the SGD default of 0.05 would blow Adam up)', () => {
    expect(parseTrainConfig(['--optimizer', 'adamw']).lr).toBe(1e-3);
    expect(parseTrainConfig(['--optimizer', 'adamw', '--lr', '0.01']).lr).toBe(0.01);
    expect(parseTrainConfig([]).lr).toBe(0.05);
  });
});
