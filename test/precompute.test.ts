import { DuckDBInstance } from '@duckdb/node-api';
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, take, toArray } from 'rxjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import type { Batch } from '../core/batch.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { FASHION_MNIST_DIR, fashionMnistSource } from '../datasets/fashion-mnist.js';
import { openSource } from '../pipelines/data-source.js';
import { parsePrecomputeConfig } from '../pipelines/precompute-options.js';
import { trainBatches } from '../pipelines/train-batches.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import type { Manifest } from '../sinks/manifest.js';
import { cli } from './helpers/cli.js';

let root: string;
beforeAll(async () => {
  await selectBackend('wasm', { threads: 1 });
  root = mkdtempSync(join(tmpdir(), 'densestream-precompute-'));
});

/** The first `steps` batches a train config sees, as plain arrays (tensors freed). */
async function batchesOf(argv: string[], steps: number) {
  const { resume: _r, ...c } = parseTrainConfig([...argv, '--out', join(root, 'unused'), '--steps', String(steps)]);
  const source = await openSource(c.data);
  const budget = new SampleBudget((steps + 2) * c.batch); // every batch is held until all are in
  const batches = await lastValueFrom(trainBatches(c, source, budget, () => undefined).pipe(take(steps), toArray()));
  return batches.map((b: Batch) => {
    const plain = {
      ids: b.ids,
      views: b.views.map((v) => Array.from(v.dataSync())),
      boxes: b.boxes.map((v) => Array.from(v.dataSync())),
      flipped: b.flipped.map((v) => Array.from(v.dataSync())),
      masks: b.masks.map((m) => (m ? Array.from(m.dataSync()) : null)),
    };
    b.dispose();
    budget.release(b.ids.length);
    return plain;
  });
}

describe('densestream precompute', () => {
  it('writes views that train --data parquet:DIR sees exactly as the live pipeline cuts them, epoch by epoch', async () => {
    const out = join(root, 'views');
    const run = cli(
      'precompute',
      '--quiet',
      '--data',
      'scenes:64:24',
      '--out',
      out,
      '--views',
      '4',
      '--masks',
      'gt',
      '--rows-per-file',
      '10',
    );
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ rows: 24, partsWritten: 3 });
    const common = ['--batch', '8', '--method', 'hapicl', '--masks', 'gt'];
    const before = tf.memory().numTensors;
    // 24 images, batch 8: steps 0–2 are epoch 0, steps 3–5 epoch 1 (the two stored epochs).
    const live = await batchesOf(['--data', 'scenes:64:24', ...common], 6);
    const stored = await batchesOf(['--data', `parquet:${out}`, ...common], 6);
    expect(tf.memory().numTensors).toBe(before);
    expect(stored.map((b) => b.ids)).toEqual(live.map((b) => b.ids));
    stored.forEach((b, i) => {
      const l = live[i]!;
      expect(b.boxes).toEqual(l.boxes);
      expect(b.flipped).toEqual(l.flipped);
      expect(b.masks).toEqual(l.masks);
      b.views.forEach((v, k) => expect(v.every((x, j) => x === l.views[k]![j])).toBe(true)); // PNG: the same pixels
    });
  });

  it.runIf(existsSync(FASHION_MNIST_DIR))(
    "stores Fashion-MNIST's silhouettes as --masks gt, and refuses gt for data without truth",
    async () => {
      const out = join(root, 'fashion-gt');
      // --shard 0/6000: ten of the 60 000 images
      const run = cli('precompute', '--quiet', '--data', 'fashion-mnist', '--out', out, '--masks', 'gt', '--shard', '0/6000');
      expect(run.status, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ rows: 10 });
      // The stored masks, read by DuckDB, are the silhouettes: exactly the images' non-zero pixels.
      const db = await (await DuckDBInstance.create(':memory:')).connect();
      const rows = (
        await db.runAndReadAll(`SELECT id, width, height, mask, method FROM read_parquet('${out}/masks-*.parquet') ORDER BY id`)
      ).getRows() as Array<[string, number, number, { bytes: Uint8Array }, string]>;
      db.closeSync();
      expect(rows).toHaveLength(10);
      const source = await fashionMnistSource(FASHION_MNIST_DIR, 'train');
      for (const [id, width, height, png, method] of rows) {
        expect([width, height, method]).toEqual([28, 28, 'gt']);
        const grey = (await source.read(Number(id.split(':').at(-1)))).pixels!.data;
        const stored = await sharp(Buffer.from(png.bytes)).greyscale().raw().toBuffer();
        expect([...stored]).toEqual([...grey].map((v) => (v > 0 ? 255 : 0)));
      }
      expect(() => parsePrecomputeConfig(['--data', 'dir:/tmp', '--masks', 'gt', '--out', join(root, 'never')])).toThrow(
        '--masks gt: only the built-in scenes and Fashion-MNIST (its silhouettes) carry ground truth, not dir:/tmp',
      );
    },
  );

  it("writes a masks table DuckDB reads, with PNG masks of the whole source at the saliency map's size", async () => {
    const out = join(root, 'masks');
    expect(cli('precompute', '--quiet', '--data', 'scenes:48:12', '--out', out, '--masks', 'saliency', '--preset', 'byol').status).toBe(0);
    const db = await (await DuckDBInstance.create(':memory:')).connect();
    const rows = (
      await db.runAndReadAll(
        `SELECT count(*), count(DISTINCT id), min(height), max(width), min(method) FROM read_parquet('${out}/masks-*.parquet')`,
      )
    ).getRows();
    expect(rows).toEqual([[12n, 12n, 32, 32, 'saliency']]); // 48-px scenes, maps at the views' 32 px
    const views = (
      await db.runAndReadAll(`SELECT count(*), count(DISTINCT id), max(view), avg(len(box)) FROM read_parquet('${out}/views-*.parquet')`)
    ).getRows();
    expect(views).toEqual([[24n, 12n, 1, 4]]);
    const [[png]] = (await db.runAndReadAll(`SELECT mask FROM read_parquet('${out}/masks-*.parquet') LIMIT 1`)).getRows() as [
      [{ bytes: Uint8Array }],
    ];
    const meta = await sharp(Buffer.from(png.bytes)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 32, 32]);
    db.closeSync();
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
    expect(Object.keys(manifest.parts[0]!.files).sort()).toEqual(['masks', 'views']);
  });

  it('refuses views that do not fit the training configuration, and a --views that is not whole epochs', () => {
    const out = join(root, 'views'); // written by the first test: the default recipe's 32 px and hue, mocov2's views
    const wrong = cli(
      'train',
      '--data',
      `parquet:${out}`,
      '--method',
      'densecl',
      '--size',
      '96',
      '--steps',
      '1',
      '--out',
      join(root, 'never'),
    );
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toContain('precomputed views do not fit: --size 96 (the views are 32 px)');
    const hue = cli('train', '--data', `parquet:${out}`, '--hue', '0.1', '--steps', '1', '--out', join(root, 'never'));
    expect(hue.stderr).toContain('--hue 0.1 (the views were cut with 0.5)');
    // Cut with masks, so mask-aware (HARL's 20 %): a method with plain crops, or hapicl asking for another share, is refused.
    expect(wrong.stderr).toContain(
      '--method densecl cuts plain crops (the views were cut keeping 0.2 of each crop on the mask; precompute with --min-foreground 0)',
    );
    const share = cli(
      'train',
      '--data',
      `parquet:${out}`,
      '--method',
      'hapicl',
      '--masks',
      'gt',
      '--min-foreground',
      '0.5',
      '--steps',
      '1',
      '--out',
      join(root, 'never'),
    );
    expect(share.status).toBe(2);
    expect(share.stderr).toContain('--min-foreground 0.5 (the views were cut with 0.2)'); // not "already holds a run": a refusal leaves no file
    expect(readdirSync(join(root, 'never'))).toEqual([]);
    expect(
      cli('precompute', '--data', 'scenes:64:4', '--out', join(root, 'never'), '--masks', 'none', '--min-foreground', '0.2').stderr,
    ).toContain('--min-foreground: crops keep to the foreground of masks; drop it with --masks none');
    const odd = cli('precompute', '--data', 'scenes:64:4', '--out', join(root, 'odd'), '--views', '3');
    expect(odd.status).toBe(2);
    expect(odd.stderr).toContain("--views: expected a multiple of the mocov2 preset's 2 views");
  });

  // An older build wrote no key for an option added since: a resume reads the value it cut with
  // (the option's old fixed value) and refuses the new default, naming both.
  it.each([
    { key: 'hue', flag: '--hue', old: '0.1', stored: 0.1, fresh: 0.5, extra: ['--masks', 'none'] },
    // 32-px views get maps of 32 by default; an older build cut 64-px maps.
    { key: 'saliencySize', flag: '--saliency-size', old: '64', stored: 64, fresh: 32, extra: ['--size', '32'] },
  ])('resumes an output from before $flag (no $key in its manifest) with its value, and refuses another, naming it', (c) => {
    const out = join(root, `old-${c.key}`);
    const args = ['precompute', '--quiet', '--data', 'scenes:64:8', '--out', out, '--rows-per-file', '4', ...c.extra];
    expect(cli(...args, c.flag, c.old).status).toBe(0);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest & { config: Record<string, unknown> };
    expect(manifest.config[c.key]).toBe(c.stored);
    delete manifest.config[c.key];
    writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest));
    const other = cli(...args);
    expect(other.status).toBe(2);
    expect(other.stderr).toContain(`(${c.key}: ${c.stored} there, ${c.fresh} now); use another --out`);
    const same = cli(...args, c.flag, c.old);
    expect(same.status, same.stderr).toBe(0);
    expect(JSON.parse(same.stdout)).toMatchObject({ rows: 8, partsSkipped: 2 });
  });
});
