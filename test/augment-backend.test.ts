/**
 * The two ways of cutting a view's pixels — per image on the CPU (sharp, or the same bands in JS
 * for an enlarged crop) and per batch on the compute backend (tensor ops) — give the same views:
 * the same boxes and flips exactly (one plan), the same maps exactly (one nearest-neighbour cut),
 * and pixels within interpolation tolerance (half-pixel centres, libvips' anti-aliased linear
 * reduce, edges repeated).
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { from } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderScene } from '../datasets/scenes.js';
import { selectBackend } from '../models/backend.js';
import { presetViews, type PresetName, type ViewConfig } from '../operators/augment-presets.js';
import { batch } from '../operators/batch.js';
import type { Batch } from '../core/batch.js';
import { cutPlannedViews } from '../operators/cut-planned-views.js';
import { decode } from '../operators/decode.js';
import { multiView } from '../operators/multi-view.js';
import { axisWeights, blurTaps, viewWeights } from '../operators/resample-weights.js';
import { CUT_VIEWS_KERNEL, type PlannedView, type Sample, type View } from '../core/index.js';
import { augmentBatch, augmentViews } from '../operators/augment-views.js';
import { chooseAugmentPath, MIN_ROUND_MS } from '../operators/augment-choice.js';
import { AUGMENT_PATHS } from '../operators/augment-path.js';
import { stackSources } from '../operators/view-sources.js';
import { registerCutViews } from '../models/kernels/cut-views.js';
import { collect } from './helpers/collect.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const scenes = (n: number, size = 64) => Array.from({ length: n }, (_, i) => renderScene(11, i, size));
const photos = async (minSide: number): Promise<Sample[]> =>
  collect(
    from(['chelsea.jpg', 'coffee.jpg'].map((f) => ({ id: f, bytes: new Uint8Array(readFileSync(join(FIXTURES, f))) }))).pipe(
      decode({ minSide }),
    ),
  );

/** Both paths over the same samples: CPU views, and backend views read back as bytes. */
async function bothPaths(
  samples: Sample[],
  views: ViewConfig[],
  seed = 3,
): Promise<{ cpu: Sample[]; backend: Sample[]; planned: Sample[] }> {
  const cpu = await collect(from(samples).pipe(multiView({ views, seed })));
  const planned = await collect(from(samples).pipe(multiView({ views, seed, augment: 'backend' })));
  const backend = await collect(from(planned).pipe(cutPlannedViews({ batch: 8 })));
  return { cpu, backend, planned };
}

/** Mean and largest absolute difference of two views' bytes, in 0–255 units. */
function difference(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / a.length, max };
}

function compareViews(cpu: Sample[], backend: Sample[]): { mean: number; worstView: number } {
  let total = 0;
  let n = 0;
  let worstView = 0;
  cpu.forEach((s, i) =>
    s.views!.forEach((v, k) => {
      const w = backend[i]!.views![k] as View;
      expect(w.pixels.width).toBe(v.pixels!.width);
      const d = difference(v.pixels!.data, w.pixels.data);
      total += d.mean * v.pixels!.data.length;
      n += v.pixels!.data.length;
      worstView = Math.max(worstView, d.mean);
    }),
  );
  return { mean: total / n, worstView };
}

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
});

describe('resample weights', () => {
  it("is the identity for a crop of the view's own size, and each row sums to 1", () => {
    const same = axisWeights(3, 13, 20, 10);
    for (let i = 0; i < 10; i++) for (let j = 0; j < 20; j++) expect(same[i * 20 + j]).toBeCloseTo(j === i + 3 ? 1 : 0, 6);
    for (const [start, end, size] of [
      [0, 7, 28],
      [5, 40, 16],
      [0, 451, 224],
    ] as const) {
      const w = axisWeights(start, end, 451, size);
      for (let i = 0; i < size; i++) expect(w.subarray(i * 451, (i + 1) * 451).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  });

  it("samples an enlargement at half-pixel centres, as torchvision's resize: 2× of [10, 20, 30] gives 10, 12.5, 17.5, 22.5, 27.5, 30", () => {
    // PyTorch's F.interpolate(mode='linear', align_corners=False) gives these, and 5 → 7 px the second
    // line; libvips' affine stage (sharp's resize) gave 10, 10, 15, 20, 25, 30: half an output pixel early
    const at = (line: number[], size: number) => {
      const w = axisWeights(0, line.length, line.length, size);
      return Array.from({ length: size }, (_, i) => line.reduce((a, v, j) => a + w[i * line.length + j]! * v, 0));
    };
    expect(at([10, 20, 30], 6)).toEqual([10, 12.5, 17.5, 22.5, 27.5, 30].map((v) => expect.closeTo(v, 5)));
    expect(at([10, 20, 30, 40, 50], 7)).toEqual([10, 15.7143, 22.8571, 30, 37.1429, 44.2857, 50].map((v) => expect.closeTo(v, 3)));
  });

  it('keeps an axis the crop does not resize as it is, when the other axis is enlarged', () => {
    // libvips ran its affine stage on both axes then, sampling the kept one half a pixel early (a two-tap blur)
    const { rows, cols } = viewWeights([0, 2, 8, 6], false, undefined, 8, 8, 8);
    for (let i = 0; i < 8; i++) expect(cols[i * 8 + i]).toBeCloseTo(1, 6);
    expect(rows[0 * 8 + 2]).toBeCloseTo(1, 6); // rows: 4 px to 8, the first output at source 2 − ¼, clamped to the crop
    expect(rows[1 * 8 + 2]).toBeCloseTo(0.75, 6);
    expect(rows[1 * 8 + 3]).toBeCloseTo(0.25, 6);
  });

  it('shrinks 2× with a triangle of half-width 2 (taps ¼, ¾, ¾, ¼ over 8): no source pixel is skipped', () => {
    const w = axisWeights(0, 8, 8, 4);
    expect(Array.from(w.subarray(8, 16)).map((x) => Math.round(x * 8))).toEqual([0, 1, 3, 3, 1, 0, 0, 0]);
  });

  it("uses libvips' integer Gaussian taps at sharp's defaults (σ = 1: 12, 20, 12; σ < 0.56: none)", () => {
    expect(Array.from(blurTaps(1)).map((t) => t * 44)).toEqual([12, 20, 12].map((t) => expect.closeTo(t, 4)));
    expect(Array.from(blurTaps(0.5))).toEqual([1]);
    expect(Array.from(blurTaps(0.2))).toEqual([1]);
    expect(blurTaps(2).length).toBe(7);
  });

  it("mirrors a flipped view: its first column is the crop's last", () => {
    const { cols } = viewWeights([2, 0, 6, 4], true, undefined, 8, 4, 4);
    expect(cols[0 * 8 + 5]).toBeCloseTo(1, 6);
    expect(cols[3 * 8 + 2]).toBeCloseTo(1, 6);
  });
});

describe('augment: backend against cpu', () => {
  it.each(['mocov2', 'byol', 'multicrop'] as PresetName[])('draws the same boxes, flips and maps exactly (%s)', async (preset) => {
    const { cpu, planned } = await bothPaths(scenes(12), presetViews(preset, 48));
    cpu.forEach((s, i) =>
      s.views!.forEach((v, k) => {
        const p = planned[i]!.views![k] as PlannedView;
        expect(p.plan).toBeDefined();
        expect(p.pixels).toBeUndefined();
        expect(p.box).toEqual(v.box);
        expect(p.flipped).toBe(v.flipped);
        expect(p.size).toBe(v.pixels!.width);
        expect(p.gtMask!.data).toEqual(v.gtMask!.data);
        expect(p.gtClasses!.data).toEqual(v.gtClasses!.data);
      }),
    );
  });

  it.each(['mocov2', 'byol', 'multicrop'] as PresetName[])(
    'cuts scenes within 2/255 mean absolute difference of sharp (%s)',
    async (preset) => {
      const { cpu, backend } = await bothPaths(scenes(24), presetViews(preset, 64));
      const d = compareViews(cpu, backend);
      // measured: 0.18–0.19 mean, 0.36 in the worst view; the enlarged crops are the same bytes on
      // both paths (one set of bands), the shrinking ones differ by libvips' rounding
      expect(d.mean).toBeLessThanOrEqual(1);
      expect(d.worstView).toBeLessThanOrEqual(1);
    },
  );

  it("cuts enlarged crops on the CPU from the backend's own bands, each blurred at its sigma: the same bytes", async () => {
    const blurred: ViewConfig = { size: 32, scale: [0.05, 0.2], ratio: [3 / 4, 4 / 3], flip: 0.5, blur: { prob: 0.7, sigma: [0.3, 2.5] } };
    const { cpu, backend, planned } = await bothPaths(scenes(16), [blurred]);
    expect(planned.filter((s) => blurTaps((s.views![0] as PlannedView).plan.blurSigma ?? 0).length > 1).length).toBeGreaterThan(4);
    const d = compareViews(cpu, backend);
    // measured: 0 — sharp's affine stage would sample them half an output pixel early (a two-tap blur)
    expect(d.mean).toBeLessThanOrEqual(0.01);
    expect(d.worstView).toBeLessThanOrEqual(0.05);
  });

  it.each([64, 224])('cuts real photos within 1/255 mean absolute difference of sharp (%i px views, shrinking crops)', async (size) => {
    const images = await photos(Math.ceil(size / Math.sqrt(0.2)));
    const { cpu, backend } = await bothPaths([...images, ...images.map((s) => ({ ...s, id: `${s.id}#2` }))], presetViews('byol', size), 5);
    const d = compareViews(cpu, backend);
    expect(d.mean).toBeLessThanOrEqual(1);
    expect(d.worstView).toBeLessThanOrEqual(1); // measured: 0.20–0.22 mean, 0.30 in the worst view
  });

  it('gives batch() the same normalised tensors as the CPU path, and frees them', async () => {
    const views = presetViews('mocov2', 32);
    const before = tf.memory().numTensors;
    const cut = await collect(from(scenes(16)).pipe(multiView({ views, seed: 4 }), batch(8)));
    const planned = await collect(from(scenes(16)).pipe(multiView({ views, seed: 4, augment: 'backend' }), batch(8)));
    expect(planned).toHaveLength(2);
    cut.forEach((a: Batch, i) => {
      const b = planned[i]!;
      expect(b.ids).toEqual(a.ids);
      for (let k = 0; k < 2; k++) {
        expect(b.views[k]!.shape).toEqual(a.views[k]!.shape);
        const mad = tf.tidy(() => tf.mean(tf.abs(tf.sub(a.views[k]!, b.views[k]!))).dataSync()[0]!);
        expect(mad).toBeLessThanOrEqual(2 / 255 / 0.224);
        expect(b.boxes[k]!.arraySync()).toEqual(a.boxes[k]!.arraySync());
        expect(b.flipped[k]!.arraySync()).toEqual(a.flipped[k]!.arraySync());
      }
    });
    [...cut, ...planned].forEach((b) => b.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keeps numTensors flat over many batches', async () => {
    const views = presetViews('byol', 24);
    const run = async () =>
      (await collect(from(scenes(32, 32)).pipe(multiView({ views, seed: 1, augment: 'backend' }), batch(8)))).forEach((b) => b.dispose());
    await run();
    const before = tf.memory().numTensors;
    await run();
    await run();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('cuts a batch of images of several sizes at once: each view as its own size’s batch gives it', async () => {
    // two sizes interleaved, as a folder of landscape and portrait photos gives them
    const mixed = [...scenes(5, 64)].flatMap((s, i) => (i % 2 ? [s, renderScene(11, 90 + i, 48)] : [s]));
    const planned = await collect(from(mixed).pipe(multiView({ views: presetViews('mocov2', 32), augment: 'backend' })));
    const sizes = planned.map((s) => s.pixels!.width);
    expect(new Set(sizes)).toEqual(new Set([64, 48]));
    const before = tf.memory().numTensors;
    const read = (views: tf.Tensor4D[]) => {
      const values = views.map((t) => t.dataSync() as Float32Array);
      tf.dispose(views);
      return values;
    };
    const together = read(augmentBatch(planned));
    const apart = [64, 48].map((w) => {
      const ids = [...planned.keys()].filter((i) => sizes[i] === w);
      return { ids, views: read(augmentBatch(ids.map((i) => planned[i]!))) };
    });
    expect(tf.memory().numTensors).toBe(before);
    const plane = 32 * 32 * 3;
    for (let k = 0; k < 2; k++)
      for (const { ids, views } of apart)
        ids.forEach((i, row) =>
          expect(together[k]!.subarray(i * plane, (i + 1) * plane)).toEqual(views[k]!.subarray(row * plane, (row + 1) * plane)),
        );
  });

  it('cuts an 8-px image in a batch of 256-px ones, whose bands are wider than it, within 2/255 of sharp', async () => {
    const mixed = [...scenes(2, 256), renderScene(11, 98, 8), ...scenes(2, 256).map((s) => ({ ...s, id: `${s.id}#2` }))];
    const { cpu, backend, planned } = await bothPaths(mixed, presetViews('byol', 32), 6);
    // a crop of 160 px or more shrinks 5× or more: a band of 11 pixels or more, past the 8-px image's edge
    expect(planned.some((s) => s.views!.some((v) => v.box[2] - v.box[0] >= 160))).toBe(true);
    const d = compareViews(cpu, backend);
    expect(d.mean).toBeLessThanOrEqual(2);
  });

  it('stacks the sources as their own pixels, [B, H, W, 3], nothing around them', () => {
    const two = scenes(2, 16);
    const stacked = stackSources(two);
    expect(stacked.shape).toEqual([2, 16, 16, 3]);
    expect(Array.from(stacked.dataSync())).toEqual(two.flatMap((s) => Array.from(s.pixels!.data)));
    stacked.dispose();
  });

  it('refuses to stack images of different sizes into one tensor, naming the sample', async () => {
    const mixed = [...scenes(3, 64), renderScene(11, 99, 48)];
    expect(() => stackSources(mixed)).toThrow(/sample scenes:99 is 48×48/);
  });

  it('refuses a box outside its image, naming the sample, rather than clamping it', async () => {
    const planned = await collect(from(scenes(2)).pipe(multiView({ views: presetViews('mocov2', 32), augment: 'backend' })));
    const bad = planned.map((s, i) => (i === 1 ? { ...s, views: s.views!.map((v) => ({ ...v, box: [40, 0, 70, 30] as const })) } : s));
    const before = tf.memory().numTensors;
    await expect(collect(from(bad).pipe(batch(2)))).rejects.toThrow(
      /sample scenes:1: box \[40, 0, 70, 30\] is not a crop of its 64×64 image/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('augment: the one-pass cut on wasm', () => {
  const normalise = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;

  /** Every view index cut with the wasm kernel, then with the op graph (the kernel unregistered for the call). */
  function bothCuts(planned: Sample[], norm: boolean): { fused: Float32Array[]; graph: Float32Array[] } {
    const sources = stackSources(planned);
    const cut = () =>
      [0, 1].map((k) => tf.tidy(() => augmentViews(sources, planned, k, norm ? normalise : undefined).dataSync() as Float32Array));
    try {
      expect(tf.getKernel(CUT_VIEWS_KERNEL, 'wasm')).toBeDefined();
      const fused = cut();
      tf.unregisterKernel(CUT_VIEWS_KERNEL, 'wasm');
      try {
        return { fused, graph: cut() };
      } finally {
        registerCutViews();
      }
    } finally {
      sources.dispose();
    }
  }

  // 64 → 32 px: shrinking crops; 48 → 48 px: enlarging ones, the
  // second view the whole image (flipped or not), so the last pixel of every image is sampled.
  it.each([
    [64, presetViews('mocov2', 32)],
    [48, [presetViews('mocov2', 48)[0] as ViewConfig, { size: 48, crop: 'whole', scale: [1, 1], ratio: [1, 1], flip: 0.5 } as ViewConfig]],
  ] as const)(
    'cuts the same values from %i-px images as bytes (augmentBatch) as from float32 sources (stackSources)',
    async (scene, configs) => {
      const planned = await collect(from(scenes(12, scene)).pipe(multiView({ views: [...configs], seed: 2, augment: 'backend' })));
      const sources = stackSources(planned);
      const fromFloats = [0, 1].map((k) => tf.tidy(() => augmentViews(sources, planned, k).dataSync() as Float32Array));
      sources.dispose();
      const views = augmentBatch(planned);
      views.forEach((v, k) => expect(v.dataSync()).toEqual(fromFloats[k]));
      tf.dispose(views);
    },
  );

  // Every branch of the kernel in one batch: flips, blurs of several widths beside none,
  // jitter, grey and solarize, on crops from a tenth of the image to all of it.
  const everything: ViewConfig = {
    size: 48,
    scale: [0.1, 1],
    ratio: [3 / 4, 4 / 3],
    flip: 0.5,
    jitter: { prob: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 },
    grayscale: 0.2,
    blur: { prob: 0.6, sigma: [0.3, 2.5] },
    solarize: 0.3,
  };

  // 48-px views of 48-px scenes: every crop enlarges; 32-px views of 64-px scenes: most shrink.
  it.each([
    [48, 48, false],
    [48, 48, true],
    [64, 32, false],
    [64, 32, true],
  ] as const)(
    'gives the op graph’s pixels: %i-px scenes cut to %i px, flips, blurs, jitter, grey, solarize (normalised: %s)',
    async (scene, view, norm) => {
      const planned = await collect(
        from(scenes(24, scene)).pipe(
          multiView({
            views: [
              { ...everything, size: view },
              { ...everything, size: view },
            ],
            seed: 9,
            augment: 'backend',
          }),
        ),
      );
      const views = planned.flatMap((s) => s.views as PlannedView[]);
      // the batch reaches every branch of the kernel
      expect(views.some((v) => v.flipped)).toBe(true);
      expect(views.some((v) => blurTaps(v.plan.blurSigma ?? 0).length > 1)).toBe(true);
      expect(views.some((v) => blurTaps(v.plan.blurSigma ?? 0).length === 1)).toBe(true);
      expect(views.some((v) => v.plan.solarize)).toBe(true);
      expect(views.some((v) => v.box[2] - v.box[0] < view)).toBe(true);
      expect(views.some((v) => v.box[2] - v.box[0] > view)).toBe(scene > view);
      const before = tf.memory().numTensors;
      const { fused, graph } = bothCuts(planned, norm);
      expect(tf.memory().numTensors).toBe(before);
      const level = norm ? 1 / (255 * Math.min(...normalise.std)) : 1;
      fused.forEach((f, k) => {
        const g = graph[k]!;
        expect(f.length).toBe(g.length);
        let worst = 0;
        let off = 0;
        for (let i = 0; i < f.length; i++) {
          const d = Math.abs(f[i]! - g[i]!);
          worst = Math.max(worst, d);
          if (d > 1e-4) off++;
        }
        // the same arithmetic in another order: a value may round to the next level where the
        // graph's lands within float error of a half (bilinear weights of ½ on integer pixels
        // make exact halves common), nothing more. Measured: 0.2 % of values, one level each.
        expect(worst).toBeLessThanOrEqual(level * 1.0001);
        expect(off / f.length).toBeLessThan(0.01);
      });
    },
  );
});

describe("augment: auto's measurement", () => {
  it('reports each path per image of one pass, however often a short round repeats it, and says so', async () => {
    // Two 28-px scenes cut in well under a millisecond a pass, so each timed round repeats its
    // pass until MIN_ROUND_MS: an undivided sum would report tens of milliseconds an image.
    const decision = await chooseAugmentPath('auto', { samples: scenes(2, 28), views: presetViews('mocov2', 28), seed: 1 });
    expect(AUGMENT_PATHS).toContain(decision.path);
    for (const ms of [decision.cpuMs, decision.backendMs]) {
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThan(MIN_ROUND_MS / 8);
    }
    expect(decision.reason).toMatch(
      /^augment: (cpu|backend) \(auto: [\d.]+ ms of CPU per image on the backend, [\d.]+ on the CPU path, measured on 2 images\)$/,
    );
    // chosen by the measurement: the cheaper path
    expect(decision.path).toBe(decision.backendMs! < decision.cpuMs! ? 'backend' : 'cpu');
  });
});
