/** A damaged checkpoint is refused with the file named, not with a tfjs error deep in decoding. */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSaved, saveVariables, verifySaved } from '../models/weights-io.js';
import { readWeightsMeta } from '../models/weights-manifest.js';
import { CLI } from './helpers/cli.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

async function saved(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'densestream-ckpt-'));
  const w = { a: tf.ones([256, 512]), b: tf.zeros([3]) };
  await saveVariables(w, dir, { step: 7 });
  tf.dispose(Object.values(w));
  return dir;
}

describe('checkpoint integrity', () => {
  it('reads back what it wrote', async () => {
    const dir = await saved();
    verifySaved(dir);
    const { tensors, meta } = readSaved(dir);
    expect(meta).toEqual({ step: 7 });
    expect(tensors.map((t) => t.name)).toEqual(['a', 'b']);
    tf.dispose(tensors.map((t) => t.tensor));
  });

  it('refuses a weights.bin cut short, naming it and both sizes', async () => {
    const dir = await saved();
    truncateSync(join(dir, 'weights.bin'), 250_000);
    const message = `${join(dir, 'weights.bin')}: 250000 bytes, 524300 when it was written; the checkpoint is damaged (cut short or overwritten)`;
    expect(() => verifySaved(dir)).toThrow(message);
    expect(() => readSaved(dir)).toThrow(message);
  });

  it('refuses a weights.bin whose bytes changed (same size), and a weights.json that is not JSON', async () => {
    const dir = await saved();
    const bin = readFileSync(join(dir, 'weights.bin'));
    bin[1000] = (bin[1000] as number) ^ 0xff;
    writeFileSync(join(dir, 'weights.bin'), bin);
    expect(() => readSaved(dir)).toThrow(
      `${join(dir, 'weights.bin')}: its SHA-256 differs from the one recorded when it was written; the checkpoint is damaged`,
    );
    writeFileSync(join(dir, 'weights.json'), '{"format": "densestream-wei');
    expect(() => readWeightsMeta(dir)).toThrow(`${join(dir, 'weights.json')}: cannot read this checkpoint's manifest`);
  });

  it('eval of a damaged run checkpoint exits 1 and names the file', () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-damaged-'));
    const train = spawnSync(
      process.execPath,
      [CLI, 'train', '--steps', '1', '--batch', '4', '--size', '32', '--queue', '16', '--knn-every', '0', '--threads', '2', '--out', out],
      { encoding: 'utf8' },
    );
    expect(train.status, train.stderr).toBe(0);
    const bin = join(out, 'checkpoint', 'weights.bin');
    truncateSync(bin, 1000);
    const run = spawnSync(
      process.execPath,
      [CLI, 'eval', '--checkpoint', out, '--protocol', 'knn', '--train', '20', '--test', '10', '--size', '32', '--threads', '2'],
      { encoding: 'utf8' },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(`${bin.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 1000 bytes, \\d+ when it was written; the checkpoint is damaged`),
    );
  });
});
