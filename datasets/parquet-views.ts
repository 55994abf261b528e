/**
 * `parquet:DIR` — the views `densestream precompute` wrote, as a random-access source: sample
 * i is the i-th image of the shards (manifest order), carrying every precomputed view still
 * encoded; `decodeViews` picks and decodes an epoch's.
 *
 * Reads touch one Parquet row group (16 images by default), located through the files'
 * footers; the files are opened as lazy Blobs, so only the bytes of that row group are read.
 * The last few decoded row groups are kept, so reading in order costs one decode per group.
 */
import * as arrow from 'apache-arrow';
import { openAsBlob, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pq from 'parquet-wasm';
import type { Box, EncodedView, Sample } from '../core/index.js';
import type { RandomAccessSource } from './source.js';

/** How the views were made: what `train` must agree with to use them. */
export interface PrecomputedViews {
  preset: string;
  size: number;
  /** Views stored per image (G epochs × P). */
  viewsPerSample: number;
  /** Views per epoch (P, the preset's). */
  viewsPerEpoch: number;
  masks: string;
  attentionView: boolean;
  /** Mask-aware crops' foreground fraction (0: plain crops, and shards from before the option). */
  minForeground: number;
  /** The colour jitter's hue range (undefined: the preset's, and shards from before the option). */
  hue?: number;
  seed: number;
}

interface ManifestLike {
  format: string;
  job: string;
  config: Record<string, unknown>;
  shard: { index: number; count: number };
  complete: boolean;
  parts: Array<{ part: number; rows: number; files: Record<string, { file: string; rows: number }> }>;
}

interface ViewFile {
  path: string;
  /** Index of this file's first image in the source. */
  first: number;
  images: number;
  /** Image offset of each row group, then the total (row groups hold whole images). */
  groupStarts?: number[];
  file?: Promise<pq.ParquetFile>;
}

/** Decoded row groups kept (least recently used out): 16 × 16 images. */
const CACHED_GROUPS = 16;

function readManifests(dir: string): ManifestLike[] {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((f) => /^manifest(-\d+of\d+)?\.json$/.test(f))
      .sort();
  } catch {
    throw new Error(`parquet:${dir}: no such folder`);
  }
  if (names.length === 0) throw new Error(`parquet:${dir}: no manifest.json (write one with densestream precompute)`);
  const manifests = names.map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as ManifestLike);
  const same = (m: ManifestLike) => JSON.stringify({ ...m.config, shard: null, source: null, positions: null });
  for (const m of manifests) {
    if (m.format !== 'densestream-manifest' || m.job !== 'precompute')
      throw new Error(`parquet:${dir}: expected precompute shards, found a ${m.job} manifest`);
    if (m.config['format'] !== 'parquet')
      throw new Error(
        `parquet:${dir}: the views were written as ${String(m.config['format'])}; precompute with --format parquet to train from them`,
      );
    if (!m.complete)
      throw new Error(`parquet:${dir}: shard ${m.shard.index}/${m.shard.count} is unfinished; re-run its precompute to complete it`);
    if (same(m) !== same(manifests[0] as ManifestLike))
      throw new Error(`parquet:${dir}: the shards were precomputed with different arguments`);
  }
  const count = (manifests[0] as ManifestLike).shard.count;
  const indices = manifests.map((m) => m.shard.index).sort((a, b) => a - b);
  if (manifests.some((m) => m.shard.count !== count) || indices.join() !== Array.from({ length: count }, (_, i) => i).join()) {
    throw new Error(`parquet:${dir}: expected the manifests of shards 0…${count - 1} of ${count}, found ${indices.join(', ')}`);
  }
  return manifests.sort((a, b) => a.shard.index - b.shard.index);
}

export function parquetViewsSource(dir: string): RandomAccessSource & { precomputed: PrecomputedViews } {
  const manifests = readManifests(dir);
  const c = (manifests[0] as ManifestLike).config;
  const precomputed: PrecomputedViews = {
    preset: String(c['preset']),
    size: Number(c['size']),
    viewsPerSample: Number(c['views']),
    viewsPerEpoch: Number(c['viewsPerEpoch']),
    masks: String(c['masks']),
    attentionView: c['attentionView'] === true,
    minForeground: Number(c['minForeground'] ?? 0),
    ...(typeof c['hue'] === 'number' ? { hue: c['hue'] } : {}),
    seed: Number(c['seed']),
  };
  const files: ViewFile[] = [];
  let total = 0;
  for (const m of manifests) {
    for (const part of [...m.parts].sort((a, b) => a.part - b.part)) {
      const f = part.files['views'];
      if (!f || part.rows === 0) continue;
      files.push({ path: join(dir, f.file), first: total, images: part.rows });
      total += part.rows;
    }
  }
  const perImage = precomputed.viewsPerSample;
  const cache = new Map<string, Promise<arrow.Table>>(); // `file#group` → decoded rows, oldest first

  const locate = (index: number): ViewFile => {
    let lo = 0;
    let hi = files.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((files[mid] as ViewFile).first <= index) lo = mid;
      else hi = mid - 1;
    }
    return files[lo] as ViewFile;
  };
  const open = async (f: ViewFile): Promise<pq.ParquetFile> => {
    f.file ??= openAsBlob(f.path).then((blob) => pq.ParquetFile.fromFile(blob));
    const file = await f.file.catch((err: unknown) => {
      f.file = undefined;
      throw err;
    }); // a failed open is retried
    if (!f.groupStarts) {
      const starts = [0];
      for (const g of file.metadata().rowGroups()) starts.push((starts.at(-1) as number) + g.numRows() / perImage);
      f.groupStarts = starts;
    }
    return file;
  };
  const group = (f: ViewFile, g: number): Promise<arrow.Table> => {
    const key = `${f.path}#${g}`;
    let rows = cache.get(key);
    if (rows) {
      cache.delete(key); // most recently used last
      cache.set(key, rows);
    } else {
      rows = open(f).then(async (file) => arrow.tableFromIPC((await file.read({ rowGroups: [g] })).intoIPCStream()));
      cache.set(key, rows);
      if (cache.size > CACHED_GROUPS) cache.delete(cache.keys().next().value as string);
      rows.catch(() => cache.delete(key));
    }
    return rows;
  };

  return {
    name: `parquet:${dir} (${total} images, ${perImage} views each)`,
    size: total,
    precomputed,
    id: (index) => `parquet:${index}`, // replaced by the stored id once read; used only to name a failed read
    async read(index) {
      if (!(index >= 0 && index < total)) throw new Error(`parquet:${dir}: no image ${index} (${total} images)`);
      const f = locate(index);
      await open(f);
      const starts = f.groupStarts as number[];
      const local = index - f.first;
      let g = 0;
      while ((starts[g + 1] as number) <= local) g++;
      const rows = await group(f, g);
      const base = (local - (starts[g] as number)) * perImage;
      const col = <T>(name: string) => rows.getChild(name) as arrow.Vector<arrow.DataType> & { get(i: number): T };
      const id = col<string>('id').get(base);
      const label = col<number | null>('label').get(base);
      const encodedViews: EncodedView[] = [];
      for (let k = 0; k < perImage; k++) {
        const r = base + k;
        if (col<string>('id').get(r) !== id || col<number>('view').get(r) !== k)
          throw new Error(`parquet:${f.path}: rows of ${id} are not its ${perImage} views in order`);
        const box = Array.from(col<arrow.Vector>('box').get(r).toArray() as Float32Array) as unknown as Box;
        const mask = col<Uint8Array | null>('mask').get(r);
        encodedViews.push({
          image: col<Uint8Array>('image').get(r),
          box,
          flipped: col<boolean>('flipped').get(r),
          ...(mask ? { mask } : {}),
        });
      }
      const sample: Sample = { id, encodedViews };
      if (label !== null && label !== undefined) sample.label = label;
      return sample;
    },
  };
}
