import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { attentionCropBox } from '../operators/attention-crop.js';
import { keyedRng, type Pixels } from '../core/index.js';
import { openAttentionSource } from '../pipelines/attention-source.js';

/** Saves a 16×16 "redness" model (1×1 conv: r − (g + b)/2) in tfjs's on-disk format. */
async function saveRednessModel(dir: string): Promise<void> {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [16, 16, 3],
        filters: 1,
        kernelSize: 1,
        useBias: false,
        weights: [tf.tensor4d([1, -0.5, -0.5], [1, 1, 3, 1])],
      }),
    ],
  });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      writeFileSync(join(dir, 'weights.bin'), Buffer.from(artifacts.weightData as ArrayBuffer));
      writeFileSync(
        join(dir, 'model.json'),
        JSON.stringify({
          format: 'layers-model',
          modelTopology: artifacts.modelTopology,
          weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
        }),
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

/** 80×60 grey with a red 16×12 square at (50, 10). */
function planted(): Pixels {
  const data = new Uint8Array(80 * 60 * 3).fill(120);
  for (let y = 10; y < 22; y++) for (let x = 50; x < 66; x++) data.set([230, 20, 30], (y * 80 + x) * 3);
  return { data, width: 80, height: 60, channels: 3 };
}

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'densestream-model-'));
  await saveRednessModel(dir);
});

describe('attention from a tfjs model on disk (--attention model:PATH)', () => {
  it('loads model.json and its weights, runs it, and the attention crop finds what the model sees', async () => {
    const source = await openAttentionSource(`model:${dir}`);
    const before = tf.memory().numTensors;
    const map = await source(planted(), { id: 'planted' });
    expect(tf.memory().numTensors).toBe(before);
    expect([map.width, map.height]).toEqual([16, 16]);
    const { box, fallback } = attentionCropBox(keyedRng(0), map, 80, 60, { jitter: 0 });
    expect(fallback).toBe(false);
    // The map is 16×16, so one cell is 5 × 3.75 px of the image: allow one cell of slack.
    expect(box[0]).toBeLessThanOrEqual(50 + 5);
    expect(box[2]).toBeGreaterThanOrEqual(66 - 5);
    expect(box[1]).toBeLessThanOrEqual(10 + 3.75);
    expect(box[3]).toBeGreaterThanOrEqual(22 - 3.75);
    const inter = (Math.min(box[2], 66) - Math.max(box[0], 50)) * (Math.min(box[3], 22) - Math.max(box[1], 10));
    const union = (box[2] - box[0]) * (box[3] - box[1]) + 16 * 12 - inter;
    expect(inter / union).toBeGreaterThan(0.5);
  });

  it('names the file when the model cannot be read, and refuses unknown sources', async () => {
    await expect(openAttentionSource('model:/nonexistent/model.json')).rejects.toThrow(
      'model:/nonexistent/model.json: cannot read /nonexistent/model.json',
    );
    const notModel = join(dir, 'other.json');
    writeFileSync(notModel, '{"hello": 1}');
    await expect(openAttentionSource(`model:${notModel}`)).rejects.toThrow('is not a tfjs model.json');
    await expect(openAttentionSource('dino')).rejects.toThrow(
      '--attention: expected one of boundary|frequency-tuned|model:PATH|encoder:RUN, got "dino"',
    );
  });
});
