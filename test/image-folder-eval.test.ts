/** `eval --data dir:PATH` on a folder laid out as ImageFolder: labels from sub-folders, a seeded held-out split. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { imageFolderSource } from '../datasets/image-folder.js';
import { readSamples, splitSource } from '../datasets/source.js';
import { selectBackend } from '../models/backend.js';
import { runEvaluation } from '../pipelines/evaluate.js';
import { FOLDER_HELD_OUT, FOLDER_VAL, parseEvalConfig } from '../pipelines/eval-options.js';
import { keyedRng } from '../core/index.js';
import { loadKnnSet } from '../train/knn-monitor.js';

let root: string;

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
  root = mkdtempSync(join(tmpdir(), 'densestream-imagefolder-'));
  // Two classes that differ in colour, 30 noisy 16×16 images each.
  for (const [name, rgb] of [
    ['blue', [40, 60, 200]],
    ['red', [200, 50, 40]],
  ] as const) {
    mkdirSync(join(root, name));
    for (let i = 0; i < 30; i++) {
      const rng = keyedRng(name, i);
      const data = Uint8Array.from({ length: 16 * 16 * 3 }, (_, k) =>
        Math.max(0, Math.min(255, (rgb[k % 3] as number) + rng.int(81) - 40)),
      );
      writeFileSync(
        join(root, name, `${i}.png`),
        await sharp(data, { raw: { width: 16, height: 16, channels: 3 } })
          .png()
          .toBuffer(),
      );
    }
  }
});

describe('labelled image folders', () => {
  it('labels images by their sub-folder, classes in sorted order; a flat folder has no labels', async () => {
    const source = await imageFolderSource(root);
    expect(source.classes).toEqual(['blue', 'red']);
    expect((await source.read(0)).label).toBe(0);
    expect((await source.read(source.size - 1)).label).toBe(1);
    const flat = mkdtempSync(join(tmpdir(), 'densestream-flat-'));
    writeFileSync(
      join(flat, 'a.png'),
      await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } })
        .png()
        .toBuffer(),
    );
    const unlabelled = await imageFolderSource(flat);
    expect(unlabelled.classes).toBeUndefined();
    expect((await unlabelled.read(0)).label).toBeUndefined();
  });

  it('splits by a seeded hash of each id: disjoint, complete, about the held-out share, the same every time', async () => {
    const source = await imageFolderSource(root);
    const ids = (s: ReturnType<typeof splitSource>) => Array.from({ length: s.size }, (_, i) => s.id(i));
    const train = ids(splitSource(source, 'train', FOLDER_HELD_OUT, 0));
    const test = ids(splitSource(source, 'test', FOLDER_HELD_OUT, 0));
    expect([...train, ...test].sort()).toEqual(Array.from({ length: source.size }, (_, i) => source.id(i)).sort());
    expect(test.filter((id) => train.includes(id))).toEqual([]);
    expect(test.length).toBeGreaterThan(4);
    expect(test.length).toBeLessThan(24);
    expect(ids(splitSource(source, 'test', FOLDER_HELD_OUT, 0))).toEqual(test);
    expect(ids(splitSource(source, 'test', FOLDER_HELD_OUT, 1))).not.toEqual(test);
  });

  it('carves a validation share from the train part, leaving the test part as it was', async () => {
    const source = await imageFolderSource(root);
    const ids = (s: ReturnType<typeof splitSource>) => Array.from({ length: s.size }, (_, i) => s.id(i));
    const test = ids(splitSource(source, 'test', FOLDER_HELD_OUT, 0));
    const [train, val, testWithVal] = (['train', 'val', 'test'] as const).map((part) =>
      ids(splitSource(source, part, FOLDER_HELD_OUT, 0, FOLDER_VAL)),
    );
    expect(testWithVal).toEqual(test);
    expect([...train!, ...val!, ...test].sort()).toEqual(Array.from({ length: source.size }, (_, i) => source.id(i)).sort());
    expect(val!.filter((id) => train!.includes(id) || test.includes(id))).toEqual([]);
    expect(val!.length).toBeGreaterThan(4);
    expect(ids(splitSource(source, 'train', FOLDER_HELD_OUT, 0)).sort()).toEqual([...train!, ...val!].sort());
    expect(() => splitSource(source, 'val', FOLDER_HELD_OUT, 0)).toThrow(/validation fraction > 0/);
    expect(() => splitSource(source, 'train', 0.5, 0, 0.5)).toThrow(/leaving a train part/);
  });

  it("serves as the kNN monitor's labelled set (train --knn-data dir:PATH)", async () => {
    const set = await loadKnnSet(readSamples(await imageFolderSource(root), { shuffle: false }), { size: 16 });
    expect([set.references, set.queries]).toEqual([48, 12]);
    expect(new Set(set.labels)).toEqual(new Set([0, 1]));
  });

  it('eval scores kNN and the linear probe on the held-out part: colour classes are easy even for a random-init encoder', async () => {
    const c = {
      ...parseEvalConfig([
        '--checkpoint',
        'random',
        '--data',
        `dir:${root}`,
        '--size',
        '16',
        '--train',
        '100',
        '--test',
        '100',
        '--epochs',
        '20',
      ]),
      out: mkdtempSync(join(tmpdir(), 'densestream-folder-eval-')),
    };
    expect(c.protocols).toEqual(['knn', 'linear']);
    const evaluation = await runEvaluation(c);
    const knn = evaluation.protocols.knn!;
    expect((knn['trainImages'] as number) + (knn['testImages'] as number)).toBe(60);
    expect(knn['knn20']).toBeGreaterThan(0.9);
    expect(evaluation.protocols.linear!['linear']).toBeGreaterThan(0.9);
    expect(() => parseEvalConfig(['--checkpoint', 'random', '--data', `dir:${root}`, '--protocol', 'dense'])).toThrow(
      /only --data scenes and fashion-mnist have/,
    );
    const lines: string[] = [];
    const val = await runEvaluation({ ...c, split: 'val' }, (l) => lines.push(l));
    const scored = (e: typeof val) => (e.protocols.knn!['trainImages'] as number) + (e.protocols.knn!['testImages'] as number);
    expect(scored(val)).toBe(60 - (knn['testImages'] as number)); // the test part is read by neither side
    expect(lines.some((l) => l.includes('validation 20%'))).toBe(true);
  });
});
