/**
 * `--saliency-size PX`: the long side of the saliency maps behind attention views and saliency
 * masks; by default as fine as the views, at most 64 (docs/performance.md, "Measured: the saliency map's size").
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Sample } from '../core/index.js';
import { renderScene } from '../datasets/scenes.js';
import { PixelWorkers } from '../operators/pixel-workers.js';
import { saliencyMap, saliencySizeFor, SALIENCY_SIZE } from '../operators/saliency.js';
import { parsePrecomputeConfig } from '../pipelines/precompute-options.js';
import { parsePreviewConfig } from '../pipelines/preview-options.js';
import { decodeWithMasks, type SampleViewOptions } from '../pipelines/sample-views.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import type { TrainConfig } from '../pipelines/train-schema.js';

const VIEWS: SampleViewOptions = { size: 32, preset: 'mocov2', attentionView: false, masks: 'saliency', seed: 0 };
const scene = (i: number): Sample => renderScene(0, i, 64);

describe('the saliency map size', () => {
  const workers = new PixelWorkers(1);
  afterAll(() => workers.close());

  it('is the views’ size, at most 64', () => {
    expect([16, 32, 48, 64, 96, 224].map(saliencySizeFor)).toEqual([16, 32, 48, 64, 64, 64]);
    expect(SALIENCY_SIZE).toBe(64);
  });

  it('sizes the maps and masks a view chain makes, on the main thread and on the pixel workers alike', async () => {
    for (const [options, side] of [
      [VIEWS, 32], // 32-px views: maps of 32
      [{ ...VIEWS, size: 96 }, 64],
      [{ ...VIEWS, saliencySize: 48 }, 48],
    ] as const) {
      for (const pool of [undefined, workers]) {
        const out = await decodeWithMasks({ ...options, ...(pool ? { workers: pool } : {}) }, () => {})(scene(3));
        expect([out.attention?.width, out.attention?.height, out.mask?.width, out.mask?.height]).toEqual([side, side, side, side]);
        // The map the chain attached is saliencyMap's at that side, value for value.
        expect(out.attention?.data).toEqual(saliencyMap(out.pixels!, { size: side }).data);
      }
    }
  });

  it('follows the views in train, precompute and preview, and is refused where no saliency map is made', () => {
    const out = '/tmp/never';
    expect(parseTrainConfig(['--out', out])['saliency-size']).toBe(32); // the recipe: hapicl, saliency masks, 32 px
    expect(parseTrainConfig(['--size', '96', '--out', out])['saliency-size']).toBe(64);
    expect(parseTrainConfig(['--saliency-size', '48', '--out', out])['saliency-size']).toBe(48);
    expect(parseTrainConfig(['--method', 'mocov2', '--out', out])['saliency-size']).toBeUndefined();
    expect(parseTrainConfig(['--method', 'mocov2', '--attention-view', '--out', out])['saliency-size']).toBe(32);
    expect(parseTrainConfig(['--masks', 'gt', '--out', out])['saliency-size']).toBeUndefined();
    expect(() => parseTrainConfig(['--method', 'mocov2', '--saliency-size', '32', '--out', out])).toThrow(
      '--saliency-size: this run makes no saliency map (it makes them for --method hapicl with --masks saliency, or for --attention-view, with a saliency --attention); drop it',
    );
    expect(() => parseTrainConfig(['--masks', 'gt', '--saliency-size', '32', '--out', out])).toThrow('this run makes no saliency map');
    expect(() => parseTrainConfig(['--data', 'parquet:/tmp/views', '--saliency-size', '32', '--out', out])).toThrow(
      '--data parquet:/tmp/views holds views precompute cut, with their masks',
    );
    expect(() => parseTrainConfig(['--saliency-size', '4', '--out', out])).toThrow(/--saliency-size/);
    expect(parsePrecomputeConfig(['--data', 'scenes', '--out', out])['saliency-size']).toBe(32);
    expect(parsePrecomputeConfig(['--data', 'scenes', '--masks', 'none', '--out', out])['saliency-size']).toBeUndefined();
    expect(() => parsePrecomputeConfig(['--data', 'scenes', '--masks', 'kmeans', '--saliency-size', '32', '--out', out])).toThrow(
      '--saliency-size: these views need no saliency map',
    );
    expect(parsePreviewConfig(['--out', out])['saliency-size']).toBe(64); // preview's 96-px views
    expect(() => parsePreviewConfig(['--attention', 'model:/tmp/m.json', '--saliency-size', '32', '--out', out])).toThrow(
      '--attention model:/tmp/m.json is not a saliency method',
    );
  });

  it('resumes a checkpoint from before the option with the 64-px maps it trained on', () => {
    const run = mkdtempSync(join(tmpdir(), 'densestream-saliency-size-'));
    const config: Partial<TrainConfig> = { ...parseTrainConfig(['--out', run]) };
    delete config['saliency-size'];
    mkdirSync(join(run, 'checkpoint'));
    writeFileSync(
      join(run, 'checkpoint', 'weights.json'),
      JSON.stringify({ format: 'densestream-weights', version: 1, weights: [], meta: { config, step: 10 } }),
    );
    expect(parseTrainConfig(['--resume', '--out', run])['saliency-size']).toBe(64);
    const mocov2: Partial<TrainConfig> = { ...parseTrainConfig(['--method', 'mocov2', '--out', run]) };
    writeFileSync(
      join(run, 'checkpoint', 'weights.json'),
      JSON.stringify({ format: 'densestream-weights', version: 1, weights: [], meta: { config: mocov2, step: 10 } }),
    );
    expect(parseTrainConfig(['--resume', '--out', run])['saliency-size']).toBeUndefined(); // it made no maps
  });
});
