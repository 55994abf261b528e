import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FASHION_MNIST_DIR, fashionMnistSource } from '../datasets/fashion-mnist.js';
import { renderScene, scenesSource, SCENE_CLASSES } from '../datasets/scenes.js';
import { epochOrder, parseShard } from '../datasets/source.js';
import { from, lastValueFrom, toArray } from 'rxjs';
import { decode } from '../operators/decode.js';

describe('scenes', () => {
  it('is deterministic from (seed, index) and differs across seeds', () => {
    expect(renderScene(1, 7).pixels!.data).toEqual(renderScene(1, 7).pixels!.data);
    expect(renderScene(2, 7).pixels!.data).not.toEqual(renderScene(1, 7).pixels!.data);
  });

  it('carries consistent ground truth: mask = class map > 0, label among visible classes, boxes around objects', () => {
    for (let i = 0; i < 50; i++) {
      const s = renderScene(0, i);
      const classes = s.gtClasses!.data;
      const present = new Set(classes);
      for (let p = 0; p < classes.length; p++) expect(s.gtMask!.data[p]).toBe(classes[p]! > 0 ? 1 : 0);
      expect(present.has(s.label! + 1)).toBe(true);
      expect(s.label!).toBeLessThan(SCENE_CLASSES.length);
      expect(s.gtBoxes!.length).toBeGreaterThanOrEqual(1);
      expect(s.gtBoxes!.length).toBeLessThanOrEqual(3);
      // every foreground pixel lies in some box
      for (let p = 0; p < classes.length; p++) {
        if (!classes[p]) continue;
        const x = p % 64;
        const y = Math.floor(p / 64);
        expect(s.gtBoxes!.some(([x0, y0, x1, y1]) => x >= x0 && x < x1 && y >= y0 && y < y1)).toBe(true);
      }
    }
  });

  it('refuses impossible options, naming them', () => {
    expect(() => scenesSource({ size: 4 })).toThrow('scenes size');
    expect(() => scenesSource({ count: 0 })).toThrow('scenes count');
  });
});

describe('epoch order', () => {
  it('partitions the ids exactly across --shard i/n', () => {
    const n = 4;
    const seen = new Map<number, number>();
    for (let i = 0; i < n; i++)
      for (const idx of epochOrder(1003, { seed: 1, shard: { index: i, count: n } })) seen.set(idx, (seen.get(idx) ?? 0) + 1);
    expect(seen.size).toBe(1003);
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
  });

  it('is a seeded permutation per epoch, and skip resumes the same order', () => {
    const order = [...epochOrder(100, { seed: 3, epoch: 0 })];
    expect([...epochOrder(100, { seed: 3, epoch: 0 })]).toEqual(order);
    expect([...epochOrder(100, { seed: 3, epoch: 1 })]).not.toEqual(order);
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect([...epochOrder(100, { seed: 3, epoch: 0, skip: 40, limit: 10 })]).toEqual(order.slice(40, 50));
  });

  it('parses --shard and refuses bad values', () => {
    expect(parseShard('2/5')).toEqual({ index: 2, count: 5 });
    expect(() => parseShard('5/5')).toThrow('--shard: expected i/n with 0 ≤ i < n, got "5/5"');
    expect(() => parseShard('a/b')).toThrow('--shard');
  });
});

describe.runIf(existsSync(FASHION_MNIST_DIR))('fashion-mnist', () => {
  it('reads the IDX files: 60 000 train and 10 000 test images of 28×28 with labels 0–9', async () => {
    const train = await fashionMnistSource(FASHION_MNIST_DIR, 'train');
    const test = await fashionMnistSource(FASHION_MNIST_DIR, 'test');
    expect([train.size, test.size]).toEqual([60_000, 10_000]);
    const s = await train.read(0);
    expect(s.pixels).toMatchObject({ width: 28, height: 28, channels: 1 });
    expect(s.label).toBe(9); // the first training image is an ankle boot
  });

  it('derives per-pixel truth only when asked: the silhouette is the non-zero pixels, its class the label + 1', async () => {
    const plain = await (await fashionMnistSource(FASHION_MNIST_DIR, 'train')).read(0);
    expect(plain.gtMask).toBeUndefined(); // training reads neither
    const s = await (await fashionMnistSource(FASHION_MNIST_DIR, 'train', { groundTruth: true })).read(0);
    const grey = [...s.pixels!.data];
    expect([...s.gtMask!.data]).toEqual(grey.map((v) => (v > 0 ? 1 : 0)));
    expect([...s.gtClasses!.data]).toEqual(grey.map((v) => (v > 0 ? 10 : 0))); // an ankle boot: label 9
    expect(grey.filter((v) => v > 0).length).toBeGreaterThan(100);
  });

  it('reads pixels as views of the file, and decode works on its own RGB copy', async () => {
    const train = await fashionMnistSource(FASHION_MNIST_DIR, 'train');
    const [a, b] = [await train.read(5), await train.read(5)];
    expect(a.pixels!.data.buffer).toBe(b.pixels!.data.buffer); // no copy per read
    expect(a.pixels!.data.byteLength).toBe(28 * 28);
    const grey = [...a.pixels!.data];
    const [decoded] = await lastValueFrom(from([a]).pipe(decode(), toArray()));
    expect(decoded!.pixels!.channels).toBe(3);
    decoded!.pixels!.data.fill(0); // a later stage writing to its pixels leaves the data set as it was
    expect([...(await train.read(5)).pixels!.data]).toEqual(grey);
  });
});

describe('scenes pixel values', () => {
  it('clamps bright shading and grain instead of wrapping (no dark speckles on light objects)', () => {
    // Wrapping would turn 256 into 0: the neighbourhood of a pixel ≥ 250 would hold values < 40.
    let checked = 0;
    for (let i = 0; i < 40; i++) {
      const s = renderScene(11, i, 64, 1, 1); // one object: neighbours of one class are one object
      const d = s.pixels!.data;
      for (let p = 0; p < 64 * 64; p++) {
        const cls = s.gtClasses!.data[p]!;
        // single-tone classes only: striped-ellipse (6) and checker-diamond (7) have two tones
        if (cls === 0 || cls === 6 || cls === 7) continue;
        const right = p % 64 < 63 && s.gtClasses!.data[p + 1] === cls;
        if (!right) continue;
        for (let c = 0; c < 3; c++) {
          // shading varies smoothly across an object: neighbours within one tone differ little
          const a = d[p * 3 + c]!;
          const b = d[(p + 1) * 3 + c]!;
          if (a >= 250 && b <= 40) throw new Error(`scene ${i}: pixel ${p} wraps (${a} next to ${b})`);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(10_000);
  });
});

describe('determinism across implementations', () => {
  // Values from the renderer before 2026-12-02's speed-up (the grating as one Math.sin per
  // pixel): every published run, fixture and resumed checkpoint depends on these pixels.
  it('a scene renders the pixels and instances it always rendered', () => {
    const s = renderScene(0, 12345);
    const hash = (values: Uint8Array) => values.reduce((h, v) => (Math.imul(h, 31) + v) | 0, 0);
    expect([hash(s.pixels!.data), hash(s.gtInstances!.data)]).toEqual([-1960514228, 643993491]);
  });
});
