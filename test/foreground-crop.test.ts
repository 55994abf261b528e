import { describe, expect, it } from 'vitest';
import { keyedRng, type Box, type Plane } from '../core/index.js';
import { foregroundCropBox, randomResizedCropBox } from '../operators/view-geometry.js';
import { planView } from '../operators/view-plan.js';
import { presetViews, withAttentionView, withMinForeground } from '../operators/augment-presets.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { renderScene, scenesSource } from '../datasets/scenes.js';
import { chooseViewAugment } from '../pipelines/sample-views.js';
import { selectBackend } from '../models/backend.js';

/** A `width × height` mask with the pixels of `rect` (x0, y0, x1, y1; exclusive ends) set. */
function rectMask(width: number, height: number, rect: Box): Plane {
  const data = new Uint8Array(width * height);
  for (let y = rect[1]; y < rect[3]; y++) for (let x = rect[0]; x < rect[2]; x++) data[y * width + x] = 1;
  return { data, width, height };
}

/** Foreground share of `box` counted pixel by pixel (the reference for the summed-area table). */
function share(mask: Plane, box: Box): number {
  let fg = 0;
  for (let y = box[1]; y < box[3]; y++) for (let x = box[0]; x < box[2]; x++) fg += mask.data[y * mask.width + x]! > 0 ? 1 : 0;
  return fg / ((box[2] - box[0]) * (box[3] - box[1]));
}

const SCALE: [number, number] = [0.2, 1];
const RATIO: [number, number] = [3 / 4, 4 / 3];

describe('foregroundCropBox (HARL mask-aware crop)', () => {
  it('keeps at least the asked share of every crop on a large object, by pixel count', () => {
    const mask = rectMask(64, 64, [10, 20, 50, 60]); // 40×40: 39 % of the image
    for (let i = 0; i < 200; i++) {
      const { box, fallback } = foregroundCropBox(keyedRng(3, 'crop', i), mask, 64, 64, SCALE, RATIO, 0.2);
      expect(fallback).toBeUndefined();
      expect(share(mask, box)).toBeGreaterThanOrEqual(0.2);
      expect(box[0]).toBeGreaterThanOrEqual(0);
      expect(box[2]).toBeLessThanOrEqual(64);
      const area = ((box[2] - box[0]) * (box[3] - box[1])) / (64 * 64);
      expect(area).toBeGreaterThan(0.18); // the preset's scale range, up to rounding
    }
  });

  it('plain random crops often miss the object; the mask-aware ones never do', () => {
    const mask = rectMask(64, 64, [4, 4, 20, 20]); // 16×16 in a corner: 6 % of the image
    let plainMisses = 0;
    for (let i = 0; i < 200; i++) {
      const plain = randomResizedCropBox(keyedRng(5, 'crop', i), 64, 64, SCALE, RATIO);
      if (share(mask, plain) === 0) plainMisses++;
      const { box } = foregroundCropBox(keyedRng(5, 'crop', i), mask, 64, 64, SCALE, RATIO, 0.2);
      // No crop of ≥ 20 % of the image can be 20 % foreground here: the crop is centred on the object, its size kept.
      expect(share(mask, box)).toBeGreaterThan(0);
    }
    expect(plainMisses).toBeGreaterThan(20);
  });

  it('centres a crop that cannot qualify on a foreground pixel, keeping its size', () => {
    const mask = rectMask(64, 64, [40, 40, 41, 41]); // one pixel
    for (let i = 0; i < 50; i++) {
      const rng = () => keyedRng(9, 'crop', i);
      const { box } = foregroundCropBox(rng(), mask, 64, 64, SCALE, RATIO, 0.2);
      expect(box[0] <= 40 && box[2] > 40 && box[1] <= 40 && box[3] > 40).toBe(true);
      // Same size as the 10th plain draw of the same stream (the last one tried).
      const r = rng();
      let last: Box = [0, 0, 0, 0];
      for (let k = 0; k < 10; k++) last = randomResizedCropBox(r, 64, 64, SCALE, RATIO);
      expect([box[2] - box[0], box[3] - box[1]]).toEqual([last[2] - last[0], last[3] - last[1]]);
    }
  });

  it('reads a mask of another resolution than the image in image coordinates', () => {
    const full = rectMask(64, 64, [16, 16, 48, 48]);
    const half = rectMask(32, 32, [8, 8, 24, 24]); // the same object at half resolution
    for (let i = 0; i < 100; i++) {
      const a = foregroundCropBox(keyedRng(1, 'crop', i), full, 64, 64, SCALE, RATIO, 0.3).box;
      expect(share(full, a)).toBeGreaterThanOrEqual(0.3);
      const b = foregroundCropBox(keyedRng(1, 'crop', i), half, 64, 64, SCALE, RATIO, 0.3).box;
      expect(share(full, b)).toBeGreaterThanOrEqual(0.25); // half-resolution rounding of the corners
    }
  });

  it('takes the plain crop on an empty mask and says so', () => {
    const empty = { data: new Uint8Array(64 * 64), width: 64, height: 64 };
    const crop = foregroundCropBox(keyedRng(2, 'crop'), empty, 64, 64, SCALE, RATIO, 0.2);
    expect(crop.box).toEqual(randomResizedCropBox(keyedRng(2, 'crop'), 64, 64, SCALE, RATIO));
    expect(crop.fallback).toMatch(/empty mask/);
  });

  it('is planned from the sample mask by planView, and refused without one', () => {
    const scene = renderScene(0, 7, 64);
    const sample = { ...scene, mask: scene.gtMask! };
    const [view] = withMinForeground(presetViews('mocov2', 64), 0.2);
    const a = planView(keyedRng(0, 'view', 0, sample.id, 0), view!, sample);
    const b = planView(keyedRng(0, 'view', 0, sample.id, 0), view!, sample);
    expect(a).toEqual(b);
    expect(share(sample.mask, a.box)).toBeGreaterThan(0);
    expect(() => planView(keyedRng(0, 'view'), view!, scene)).toThrow(/needs the sample's foreground mask/);
    // Only random crops become mask-aware: an attention view keeps its own crop.
    expect(withMinForeground(withAttentionView(presetViews('mocov2', 64)), 0.2).map((v) => v.minForeground)).toEqual([undefined, 0.2]);
    expect(withMinForeground(presetViews('mocov2', 64), 0).every((v) => v.minForeground === undefined)).toBe(true);
  });
});

describe('train --min-foreground', () => {
  it('lets --augment auto measure its paths on unmasked samples (a regression: the probe planned mask-aware crops without masks)', async () => {
    await selectBackend('cpu');
    const decision = await chooseViewAugment('auto', scenesSource({ count: 64 }), {
      size: 32,
      preset: 'mocov2',
      attentionView: false,
      masks: 'saliency',
      minForeground: 0.2,
      seed: 0,
    });
    expect(['cpu', 'backend']).toContain(decision.path);
  });

  it("defaults to HARL's 20 % for hapicl and is refused for methods without masks", () => {
    expect(parseTrainConfig(['--method', 'hapicl', '--out', '/tmp/never'])['min-foreground']).toBe(0.2);
    expect(parseTrainConfig(['--method', 'hapicl', '--min-foreground', '0', '--out', '/tmp/never'])['min-foreground']).toBe(0);
    expect(parseTrainConfig(['--method', 'mocov2', '--out', '/tmp/never'])['min-foreground']).toBeUndefined();
    expect(() => parseTrainConfig(['--method', 'mocov2', '--min-foreground', '0.2'])).toThrow(/only hapicl/);
    expect(() => parseTrainConfig(['--method', 'hapicl', '--min-foreground', '1'])).toThrow(/fraction in \[0, 1\)/);
  });
});
