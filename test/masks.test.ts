import { from } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { renderScene } from '../datasets/scenes.js';
import { maskIoU } from '../train/segmentation-metrics.js';
import { attentionMap } from '../operators/attention-map.js';
import { attentionBox, attentionCropBox } from '../operators/attention-crop.js';
import { presetViews, withAttentionView, type ViewConfig } from '../operators/augment-presets.js';
import { cleanMask, foregroundMask, kmeansMask, maskFromAttention, otsuThreshold } from '../operators/foreground-mask.js';
import { multiView } from '../operators/multi-view.js';
import { saliencyMap } from '../operators/saliency.js';
import { keyedRng, type Pixels, type Plane, type Sample } from '../core/index.js';
import { collect } from './helpers/collect.js';

/** A grey, noisy 80×60 image with a red 16×12 square planted at (50, 10). */
function planted(): Pixels {
  const rng = keyedRng(4, 'planted');
  const data = new Uint8Array(80 * 60 * 3);
  for (let y = 0; y < 60; y++)
    for (let x = 0; x < 80; x++) {
      const i = (y * 80 + x) * 3;
      const inside = x >= 50 && x < 66 && y >= 10 && y < 22;
      const noise = rng.int(20);
      data[i] = inside ? 220 : 110 + noise;
      data[i + 1] = inside ? 30 : 110 + noise;
      data[i + 2] = inside ? 40 : 110 + noise;
    }
  return { data, width: 80, height: 60, channels: 3 };
}

describe('foreground masks on scenes', () => {
  const scenes = Array.from({ length: 60 }, (_, i) => renderScene(2, i));
  const mean = (f: (s: Sample) => number) => scenes.reduce((a, s) => a + f(s), 0) / scenes.length;

  it('finds the foreground from saliency: mean IoU with the ground truth ≥ 0.5 on 60 fixed scenes', () => {
    expect(mean((s) => maskIoU(maskFromAttention(saliencyMap(s.pixels!)), s.gtMask!))).toBeGreaterThanOrEqual(0.5);
  });

  it('finds it from k-means too (a weaker method): mean IoU ≥ 0.35', () => {
    expect(mean((s) => maskIoU(kmeansMask(s.pixels!, s.id), s.gtMask!))).toBeGreaterThanOrEqual(0.35);
  });

  it('does far better than calling everything foreground, with either saliency method', () => {
    const all: Plane = { data: new Uint8Array(64 * 64).fill(1), width: 64, height: 64 };
    const baseline = mean((s) => maskIoU(all, s.gtMask!));
    for (const method of ['boundary', 'frequency-tuned'] as const) {
      expect(mean((s) => maskIoU(maskFromAttention(saliencyMap(s.pixels!, { method })), s.gtMask!))).toBeGreaterThan(baseline + 0.3);
    }
  });
});

describe('attention crop', () => {
  it('puts a planted salient object inside the attention box', () => {
    const attention = saliencyMap(planted());
    const [x0, y0, x1, y1] = attentionBox(attention, 0.85).map((v, i) => v * (i % 2 === 0 ? 80 / attention.width : 60 / attention.height));
    expect(x0!).toBeLessThanOrEqual(51);
    expect(y0!).toBeLessThanOrEqual(11);
    expect(x1!).toBeGreaterThanOrEqual(65);
    expect(y1!).toBeGreaterThanOrEqual(21);
    expect((x1! - x0!) * (y1! - y0!)).toBeLessThan(0.25 * 80 * 60); // and it is tight, not the whole image
    for (let i = 0; i < 20; i++) {
      const { box, fallback } = attentionCropBox(keyedRng(1, i), attention, 80, 60, { jitter: 0.1 });
      expect(fallback).toBe(false);
      const cx = (box[0] + box[2]) / 2;
      const cy = (box[1] + box[3]) / 2;
      expect(cx).toBeGreaterThan(48);
      expect(cx).toBeLessThan(68);
      expect(cy).toBeGreaterThan(8);
      expect(cy).toBeLessThan(24);
    }
  });

  it.each([
    ['all zeros', new Float32Array(64).fill(0)],
    ['NaN', new Float32Array(64).fill(Number.NaN)],
    ['constant', new Float32Array(64).fill(0.7)],
  ])('falls back to the whole image for a map of %s, and says so', async (_, data) => {
    const attention = { data, width: 8, height: 8 };
    expect(attentionCropBox(keyedRng(0), attention, 40, 30)).toEqual({ box: [0, 0, 40, 30], fallback: true });
    const warnings: string[] = [];
    const sample: Sample = { id: 'bad', pixels: planted(), attention };
    const [out] = await collect(
      from([sample]).pipe(
        foregroundMask({ onFallback: (id) => warnings.push(id) }),
        multiView({ views: withAttentionView(presetViews('mocov2', 16)), seed: 1, onFallback: (id) => warnings.push(id) }),
      ),
    );
    expect(out!.views![0]!.box).toEqual([0, 0, 80, 60]);
    expect(Array.from(out!.mask!.data).every((v) => v === 1)).toBe(true);
    expect(warnings).toEqual(['bad', 'bad']); // once for the mask, once for the view
  });
});

describe('masks travel with the views', () => {
  it('maps every mask pixel of every view to the same source pixel, through crops and flips', async () => {
    const scenes = Array.from({ length: 6 }, (_, i) => renderScene(8, i, 64));
    const views: ViewConfig[] = [
      ...withAttentionView(presetViews('mocov2', 24)),
      { size: 40, scale: [0.1, 1], ratio: [0.5, 2], flip: 0.5 },
    ];
    const out = await collect(from(scenes).pipe(attentionMap(), foregroundMask(), multiView({ views, seed: 3 })));
    let flipped = 0;
    for (const s of out) {
      for (const v of s.views!) {
        const [x0, y0, x1, y1] = v.box;
        const size = v.pixels!.width;
        if (v.flipped) flipped++;
        for (let vy = 0; vy < size; vy++)
          for (let vx = 0; vx < size; vx++) {
            const col = v.flipped ? size - 1 - vx : vx;
            const sx = Math.min(63, Math.floor(x0 + ((col + 0.5) * (x1 - x0)) / size));
            const sy = Math.min(63, Math.floor(y0 + ((vy + 0.5) * (y1 - y0)) / size));
            expect(v.gtMask!.data[vy * size + vx]).toBe(s.gtMask!.data[sy * 64 + sx]);
            expect(v.mask!.data[vy * size + vx]).toBe(s.mask!.data[sy * 64 + sx]); // map is 64×64 here
          }
      }
    }
    expect(flipped).toBeGreaterThan(0);
  });
});

describe('mask building blocks', () => {
  it("puts Otsu's threshold between the two modes of a bimodal map", () => {
    const values = Float32Array.from({ length: 1000 }, (_, i) => (i < 700 ? 0.2 : 0.8) + ((i % 7) - 3) * 0.01);
    const t = otsuThreshold(values);
    expect(values.slice(0, 700).every((v) => v < t)).toBe(true);
    expect(values.slice(700).every((v) => v >= t)).toBe(true);
  });

  it('drops specks and fills holes (hand-made 8×8 case)', () => {
    const rows = ['10000000', '00000000', '00111110', '00100010', '00101010', '00100010', '00111110', '00000000'];
    const data = Uint8Array.from(rows.join(''), (c) => Number(c));
    const cleaned = cleanMask({ data, width: 8, height: 8 }, 2 / 64);
    const text = Array.from({ length: 8 }, (_, y) => Array.from(cleaned.data.slice(y * 8, y * 8 + 8)).join(''));
    expect(text).toEqual([
      '00000000', // the lone pixel is gone
      '00000000',
      '00111110',
      '00111110', // the ring is filled
      '00111110',
      '00111110',
      '00111110',
      '00000000',
    ]);
  });
});
