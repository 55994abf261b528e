import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { from } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderScene } from '../datasets/scenes.js';
import { centreSquareView, checkViewConfigs, presetViews, type ViewConfig } from '../operators/augment-presets.js';
import { batch } from '../operators/batch.js';
import { multiView } from '../operators/multi-view.js';
import { colourTransform } from '../operators/view-plan.js';
import type { ViewPlan } from '../core/index.js';
import { cellBoxes, viewCorrespondence } from '../operators/view-geometry.js';
import type { Sample } from '../core/index.js';
import { collect } from './helpers/collect.js';

const scenes = (n: number) => Array.from({ length: n }, (_, i) => renderScene(5, i, 64));

describe('multiView', () => {
  it('gives byte-identical views and boxes for the same seed, and different ones for another seed', async () => {
    const run = (seed: number) => collect(from(scenes(6)).pipe(multiView({ views: presetViews('byol', 48), seed })));
    const [a, b, c] = await Promise.all([run(1), run(1), run(2)]);
    for (let i = 0; i < 6; i++) {
      for (let k = 0; k < 2; k++) {
        const [va, vb] = [a[i]!.views![k]!, b[i]!.views![k]!];
        expect(vb.box).toEqual(va.box);
        expect(vb.flipped).toBe(va.flipped);
        expect(Buffer.compare(Buffer.from(vb.pixels!.data), Buffer.from(va.pixels!.data))).toBe(0);
        expect(vb.gtMask!.data).toEqual(va.gtMask!.data);
      }
    }
    const differs = a.some((s, i) => s.views!.some((v, k) => v.box.join() !== c[i]!.views![k]!.box.join()));
    expect(differs).toBe(true);
  });

  it("makes the preset's number of views at their sizes, boxes inside the source", async () => {
    const [s] = await collect(from(scenes(1)).pipe(multiView({ views: presetViews('multicrop', 64), seed: 3 })));
    expect(s!.views!.map((v) => v.pixels!.width)).toEqual([64, 64, 27, 27, 27, 27, 27, 27]);
    for (const v of s!.views!) {
      const [x0, y0, x1, y1] = v.box;
      expect(x0).toBeGreaterThanOrEqual(0);
      expect(y0).toBeGreaterThanOrEqual(0);
      expect(x1).toBeLessThanOrEqual(64);
      expect(y1).toBeLessThanOrEqual(64);
      expect(x1).toBeGreaterThan(x0);
    }
  });

  it('cuts pixels and masks with the recorded box and flip (hand-made case)', async () => {
    // A 64×64 image whose red channel is the column index and green the row index.
    const data = new Uint8Array(64 * 64 * 3);
    const mask = new Uint8Array(64 * 64);
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 64; x++) {
        data[(y * 64 + x) * 3] = x * 4;
        data[(y * 64 + x) * 3 + 1] = y * 4;
        mask[y * 64 + x] = x < 20 ? 1 : 0;
      }
    const sample: Sample = {
      id: 'grid',
      pixels: { data, width: 64, height: 64, channels: 3 },
      mask: { data: mask, width: 64, height: 64 },
    };
    // scale 0.25 with ratio 1 → a 32×32 box, cut to a 32-px view: no resampling.
    const plain: ViewConfig = { size: 32, scale: [0.25, 0.25], ratio: [1, 1], flip: 0 };
    const [out] = await collect(from([sample]).pipe(multiView({ views: [plain, { ...plain, flip: 1 }], seed: 9 })));
    const [v0, v1] = out!.views!;
    for (const v of [v0!, v1!]) {
      const [x0, y0, x1, y1] = v.box;
      expect([x1 - x0, y1 - y0]).toEqual([32, 32]);
      for (const [vx, vy] of [
        [0, 0],
        [31, 0],
        [5, 17],
        [31, 31],
      ] as const) {
        const sx = v.flipped ? x0 + 31 - vx : x0 + vx; // a flipped view's column 0 is the box's last
        const i = (vy * 32 + vx) * 3;
        expect(v.pixels!.data[i]).toBe(sx * 4);
        expect(v.pixels!.data[i + 1]).toBe((y0 + vy) * 4);
        expect(v.mask!.data[vy * 32 + vx]).toBe(sx < 20 ? 1 : 0);
      }
    }
    expect(v0!.flipped).toBe(false);
    expect(v1!.flipped).toBe(true);
  });

  it('centreSquareView keeps the aspect: the central square of a wide or tall image, resized', async () => {
    // 40×20, red channel the column index ×4: the centre view is columns 10–29, each kept (20 px box, 20 px view).
    const wide = new Uint8Array(40 * 20 * 3);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) wide[(y * 40 + x) * 3] = x * 4;
    const tall = new Uint8Array(20 * 41 * 3); // odd excess: the extra row goes to the bottom
    const samples: Sample[] = [
      { id: 'wide', pixels: { data: wide, width: 40, height: 20, channels: 3 } },
      { id: 'tall', pixels: { data: tall, width: 20, height: 41, channels: 3 } },
    ];
    const out = await collect(from(samples).pipe(multiView({ views: [centreSquareView(20)], seed: 1 })));
    expect(out.map((s) => s.views![0]!.box)).toEqual([
      [10, 0, 30, 20],
      [0, 10, 20, 30],
    ]);
    const v = out[0]!.views![0]!;
    expect([v.pixels!.width, v.pixels!.height]).toEqual([20, 20]);
    for (const x of [0, 7, 19]) expect(v.pixels!.data[(5 * 20 + x) * 3]).toBe((10 + x) * 4);
  });

  it('refuses a bad view config before any work, naming the field', () => {
    const bad = { ...presetViews('mocov2', 32)[0]!, scale: [0.5, 0.2] as [number, number] };
    expect(() => checkViewConfigs([bad])).toThrow('views[0].scale: expected 0 < lo ≤ hi ≤ 1, got [0.5, 0.2]');
    expect(() => multiView({ views: [{ ...bad, scale: [0.2, 1], flip: 2 }] })).toThrow('views[0].flip');
  });
});

describe('view geometry', () => {
  // Source 100×100. View A: box [0,0,50,50]. View B: box [25,0,75,50], flipped. Grid 2×2.
  const a = { box: [0, 0, 50, 50] as const, flipped: false };
  const b = { box: [25, 0, 75, 50] as const, flipped: true };

  it("places a flipped view's cells mirrored in source coordinates", () => {
    expect(cellBoxes(b, 2, 2)).toEqual([
      [50, 0, 75, 25],
      [25, 0, 50, 25],
      [50, 25, 75, 50],
      [25, 25, 50, 50],
    ]);
  });

  it('matches cells of two views by their overlap in the source', () => {
    const m = Array.from(viewCorrespondence(a, b, 2));
    expect(m).toEqual([
      0,
      0,
      0,
      0, // A(0,0) = [0,0,25,25] lies outside B
      0,
      1,
      0,
      0, // A(0,1) = [25,0,50,25] is B's cell (0,1)
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
    ]);
  });

  it("reports partial overlaps as the covered fraction of a's cell", () => {
    const shifted = { box: [10, 0, 60, 50] as const, flipped: false };
    const m = viewCorrespondence(a, shifted, 2);
    // A(0,0) = [0,0,25,25] meets shifted (0,0) = [10,0,35,25] over 15×25 of its 25×25.
    expect(m[0]).toBeCloseTo(15 / 25, 6);
    expect(m[1]).toBe(0);
  });
});

describe('batch', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('collates views, masks, boxes and labels into tensors once per batch, and dispose frees them all', async () => {
    const samples = scenes(5).map((s) => ({ ...s, mask: s.gtMask }));
    const before = tf.memory().numTensors;
    const batches = await collect(from(samples).pipe(multiView({ views: presetViews('mocov2', 32), seed: 1 }), batch(2)));
    expect(batches.map((b) => b.ids.length)).toEqual([2, 2, 1]);
    const first = batches[0]!;
    expect(first.views[0]!.shape).toEqual([2, 32, 32, 3]);
    expect(first.masks[1]!.shape).toEqual([2, 32, 32]);
    expect(first.boxes[0]!.shape).toEqual([2, 4]);
    expect(Array.from(first.labels!.dataSync())).toEqual(samples.slice(0, 2).map((s) => s.label));
    // normalised with ImageNet statistics: pixel 0 maps to −mean/std
    expect(Math.min(...first.views[0]!.dataSync())).toBeGreaterThanOrEqual(-0.485 / 0.229 - 1e-5);
    batches.forEach((b) => b.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('colour transform (jitter and greyscale as one affine map)', () => {
  const apply = (t: ReturnType<typeof colourTransform>, rgb: [number, number, number]) =>
    t!.matrix.map((row) => row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2] + t!.offset);
  const plan = (jitter: Partial<NonNullable<ViewPlan['jitter']>>, grayscale = false): ViewPlan => ({
    box: [0, 0, 1, 1],
    flipped: false,
    grayscale,
    solarize: false,
    jitter: { brightness: 1, contrast: 1, saturation: 1, hue: 0, ...jitter },
  });

  it('keeps greys grey under saturation and hue, and scales them by brightness', () => {
    const out = apply(colourTransform(plan({ brightness: 1.5, saturation: 0.3, hue: 0.2 }), 0), [100, 100, 100]);
    for (const v of out) expect(v).toBeCloseTo(150, 3);
  });

  it('turns a colour into its luma at saturation 0, and greyscale does the same', () => {
    for (const t of [
      colourTransform(plan({ saturation: 0 }), 0),
      colourTransform({ ...plan({}), jitter: undefined, grayscale: true }, 0),
    ]) {
      for (const v of apply(t, [255, 0, 0])) expect(v).toBeCloseTo(0.299 * 255, 3);
    }
  });

  it('pulls values toward the mean grey with contrast, leaving the mean fixed', () => {
    const t = colourTransform(plan({ contrast: 0.5 }), 80);
    expect(apply(t, [80, 80, 80])[0]).toBeCloseTo(80, 3);
    expect(apply(t, [200, 200, 200])[0]).toBeCloseTo(140, 3);
  });

  it('rotates hue: half a turn takes red toward cyan and keeps its luma', () => {
    const [r, g, b] = apply(colourTransform(plan({ hue: 0.5 }), 0), [200, 0, 0]);
    expect(g!).toBeGreaterThan(r!);
    expect(b!).toBeGreaterThan(r!);
    expect(0.299 * r! + 0.587 * g! + 0.114 * b!).toBeCloseTo(0.299 * 200, 1);
  });

  it('renders a greyscale view with three equal channels', async () => {
    const grey: ViewConfig = { size: 32, scale: [0.5, 1], ratio: [1, 1], flip: 0, grayscale: 1 };
    const [s] = await collect(from(scenes(1)).pipe(multiView({ views: [grey], seed: 2 })));
    const d = s!.views![0]!.pixels!.data;
    for (let i = 0; i < d.length; i += 3) {
      expect(Math.abs(d[i]! - d[i + 1]!)).toBeLessThanOrEqual(1);
      expect(Math.abs(d[i]! - d[i + 2]!)).toBeLessThanOrEqual(1);
    }
  });
});
