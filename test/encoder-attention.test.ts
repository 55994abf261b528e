import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderScene } from '../datasets/scenes.js';
import { selectBackend } from '../models/backend.js';
import { encoderPreset } from '../models/encoder-spec.js';
import { createEncoder } from '../models/encoders.js';
import { featureKmeansMask, maskFromAttention } from '../operators/foreground-mask.js';
import type { Pixels } from '../core/index.js';
import { createMocoV2 } from '../methods/mocov2.js';
import { encoderAttention, liveEncoderAttention } from '../pipelines/encoder-attention.js';
import { CLI } from './helpers/cli.js';

beforeAll(async () => {
  await selectBackend('wasm', { threads: 1 });
});

describe('the encoder attention source (--attention encoder:RUN)', () => {
  it("gives a CNN's activation energy: the channel norm of each cell of its last feature map", async () => {
    const encoder = createEncoder(encoderPreset('slim', 64), 3, 'attn-test/slim');
    const scene = renderScene(0, 7, 64);
    const map = await encoderAttention(encoder, 64)(scene.pixels as Pixels, scene);
    expect([map.width, map.height]).toEqual([8, 8]);
    // The same image through the encoder directly (64 px already: no resize).
    const expected = tf.tidy(() => {
      const p = scene.pixels as Pixels;
      const x = tf.div(
        tf.sub(tf.div(tf.tensor4d(Float32Array.from(p.data), [1, 64, 64, 3]), 255), tf.tensor1d([0.485, 0.456, 0.406])),
        tf.tensor1d([0.229, 0.224, 0.225]),
      ) as tf.Tensor4D;
      return Array.from(tf.norm(encoder.apply(x, { training: false }).dense, 'euclidean', 3).dataSync());
    });
    Array.from(map.data).forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 3));
    const before = tf.memory().numTensors;
    await encoderAttention(encoder, 64)(scene.pixels as Pixels, scene);
    expect(tf.memory().numTensors).toBe(before);
    encoder.dispose();
  });

  it("gives a ViT's CLS attention averaged over heads: a distribution over the patches, usable as a mask", async () => {
    const encoder = createEncoder(encoderPreset('vit', 32), 1, 'attn-test/vit');
    const scene = renderScene(0, 3, 48); // resized to the encoder's 32 px
    const map = await encoderAttention(encoder, 32)(scene.pixels as Pixels, scene);
    expect([map.width, map.height]).toEqual([4, 4]);
    expect(map.data.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    expect(map.data.every((v) => v > 0)).toBe(true);
    const mask = maskFromAttention(map);
    expect([mask.width, mask.height]).toEqual([4, 4]);
    encoder.dispose();
  });

  it("draws a preview from a train run's encoder, and refuses a folder without a checkpoint", () => {
    const run = mkdtempSync(join(tmpdir(), 'densestream-attn-run-'));
    const train = spawnSync(
      process.execPath,
      [
        CLI,
        'train',
        '--steps',
        '1',
        '--batch',
        '4',
        '--size',
        '32',
        '--queue',
        '8',
        '--data',
        'scenes:32:8',
        '--out',
        run,
        '--threads',
        '1',
      ],
      { encoding: 'utf8' },
    );
    expect(train.status, train.stderr).toBe(0);
    const sheets = join(run, 'sheets');
    const preview = spawnSync(
      process.execPath,
      [CLI, 'preview', '--data', 'scenes', '--count', '2', '--out', sheets, '--attention', `encoder:${run}`],
      { encoding: 'utf8' },
    );
    expect(preview.status, preview.stderr).toBe(0);
    expect(existsSync(join(sheets, 'preview-000.png'))).toBe(true);
    // its own --out: the default (runs/hapicl) may hold the user's main job, which train refuses to reuse
    const refused = join(run, 'refused');
    const missing = spawnSync(
      process.execPath,
      [CLI, 'train', '--attention', `encoder:${join(run, 'nothing')}`, '--steps', '1', '--out', refused],
      { encoding: 'utf8' },
    );
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--attention: no checkpoint in');
    expect(missing.stderr).not.toContain('backend:'); // refused with the options, before a backend starts
    expect(existsSync(refused)).toBe(false); // and before anything is written
  });

  it('follows the encoder being trained: a copy of its weights, brought up to date by refresh()', async () => {
    const method = createMocoV2({ encoder: encoderPreset('slim', 32), queueSize: 8, seed: 2 });
    const live = liveEncoderAttention(method.checkpointState(), encoderPreset('slim', 32), 32);
    const scene = renderScene(0, 5, 32);
    const first = (await live.source(scene.pixels as Pixels, scene)).data;
    const stem = method.checkpointState()['online/encoder/stem/w'] as tf.Variable;
    stem.assign(tf.tidy(() => tf.mul(stem, -3))); // the encoder "trains"
    expect(Array.from((await live.source(scene.pixels as Pixels, scene)).data)).toEqual(Array.from(first)); // not yet refreshed
    live.refresh();
    expect(Array.from((await live.source(scene.pixels as Pixels, scene)).data)).not.toEqual(Array.from(first));
    live.dispose();
    method.dispose();
  });

  it('trains with --attention encoder, refreshing every K steps, and refuses --attention-refresh without it', () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-attn-live-'));
    const run = spawnSync(
      process.execPath,
      [
        CLI,
        'train',
        '--attention-view',
        '--attention',
        'encoder',
        '--attention-refresh',
        '2',
        '--steps',
        '4',
        '--batch',
        '4',
        '--size',
        '32',
        '--queue',
        '8',
        '--data',
        'scenes:32:16',
        '--out',
        out,
        '--threads',
        '1',
      ],
      { encoding: 'utf8' },
    );
    expect(run.status, run.stderr).toBe(0);
    const refused = spawnSync(process.execPath, [CLI, 'train', '--attention-refresh', '2'], { encoding: 'utf8' });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('--attention-refresh: only --attention encoder');
  });

  it('splits encoder features into foreground and background by 2-means, the border cluster being background', () => {
    // 6×6 cells of 3 dims: a 2×2 centre points one way, everything else another (with noise and scale).
    const w = 6;
    const feats = new Float32Array(w * w * 3);
    for (let y = 0; y < w; y++) {
      for (let x = 0; x < w; x++) {
        const centre = x >= 2 && x < 4 && y >= 2 && y < 4;
        const scale = 1 + ((x * 7 + y * 3) % 5); // activation strength must not matter
        feats.set(centre ? [0.1 * scale, 1 * scale, 0] : [1 * scale, 0.05 * scale, 0.1 * scale], (y * w + x) * 3);
      }
    }
    const mask = featureKmeansMask(feats, 3, w, w, 'planted', 0);
    const expected = Array.from({ length: w * w }, (_, p) =>
      p % w >= 2 && p % w < 4 && Math.floor(p / w) >= 2 && Math.floor(p / w) < 4 ? 1 : 0,
    );
    expect(Array.from(mask.data)).toEqual(expected);
  });

  it("trains hapicl on masks from the live encoder's features, and refuses --masks encoder without an encoder", () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-mask-encoder-'));
    const run = spawnSync(
      process.execPath,
      [
        CLI,
        'train',
        '--method',
        'hapicl',
        '--masks',
        'encoder',
        '--attention',
        'encoder',
        '--steps',
        '2',
        '--batch',
        '4',
        '--size',
        '32',
        '--queue',
        '8',
        '--data',
        'scenes:32:8',
        '--out',
        out,
        '--threads',
        '1',
      ],
      { encoding: 'utf8' },
    );
    expect(run.status, run.stderr).toBe(0);
    const refused = spawnSync(process.execPath, [CLI, 'train', '--method', 'hapicl', '--masks', 'encoder'], { encoding: 'utf8' });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('--masks encoder: clusters the features');
  });
});
