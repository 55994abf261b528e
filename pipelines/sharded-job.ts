/**
 * What `precompute` and `export` share: this shard's samples cut into parts of R source
 * positions, each part written as one file per table under a temporary name and renamed when
 * whole, the manifest rewritten after each part. A re-run with the same arguments skips the
 * parts the manifest lists (files present at their listed sizes) and redoes the rest; the
 * output is deterministic, so a redone part is byte-identical to what it would have been.
 *
 * Part p holds the positions [p·R, (p+1)·R) of the shard's index order (unshuffled), so its
 * content depends only on the arguments — never on when the previous run was killed.
 */
import * as arrow from 'apache-arrow';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isRandomAccess, readSamples, type Shard, type Source } from '../datasets/source.js';
import type { Sample, SkipRecord } from '../operators/types/index.js';
import { removePartials } from '../sinks/atomic-file.js';
import { configDifference, manifestName, partIsDone, readManifest, writeManifest, type Manifest, type ManifestPart } from '../sinks/manifest.js';
import { openSkipLog, skipSummary } from '../sinks/skip-log.js';
import { openTableFile, tableExtension, type ParquetCodec, type TableFile, type TableFormat } from '../sinks/table-file.js';
import { ConfigError } from './train.js';
import { progressMeter } from './progress.js';

export interface TableSpec {
  /** File-name prefix and manifest key: `features`, `views`, `masks`. */
  name: string;
  schema: arrow.Schema;
}

/** What a job does with one part's samples: writes their rows to `files`; resolves with the samples written. */
export type PartWriter = (
  samples: AsyncIterable<Sample>,
  files: Record<string, TableFile>,
  onSkip: (record: SkipRecord) => void,
  /** A sample kept with a fallback (no usable attention map): logged, not counted as skipped. */
  onNote: (record: SkipRecord) => void,
) => Promise<number>;

export interface ShardedJobOptions {
  job: string;
  out: string;
  source: Source;
  shard: Shard;
  seed: number;
  /** Source positions per part (one file per table per part). */
  rowsPerFile: number;
  format: TableFormat;
  codec?: ParquetCodec;
  rowGroupRows?: number;
  /** The arguments that decide the output (stored, and compared on a re-run). */
  config: Record<string, unknown>;
  tables: TableSpec[];
  writePart: PartWriter;
  /** Progress on stderr (default true). */
  progress?: boolean;
}

export interface ShardedJobResult {
  manifest: string;
  rows: number;
  partsWritten: number;
  partsSkipped: number;
  skipped: number;
  /** Seconds spent handing rows to files and finishing them (encoding, compression, disk). */
  writeSeconds: number;
}

/** densestream's version and its pinned (exact) dependency versions. */
function versions(): Record<string, string> {
  const own = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string; dependencies: Record<string, string> };
  const pinned = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', 'apache-arrow', 'parquet-wasm', 'sharp'];
  return { densestream: own.version, node: process.versions.node, ...Object.fromEntries(pinned.map((p) => [p, own.dependencies[p] ?? 'unknown'])) };
}

function partName(table: string, shard: Shard, part: number, format: TableFormat): string {
  const tag = shard.count === 1 ? '' : `${shard.index}of${shard.count}-`;
  return `${table}-${tag}${String(part).padStart(5, '0')}.${tableExtension(format)}`;
}

/** Positions in this shard, or undefined for a stream whose length is known only at its end. */
function shardSize(source: Source, shard: Shard): number | undefined {
  if (!isRandomAccess(source) || !Number.isFinite(source.size)) return undefined;
  return Math.max(0, Math.ceil((source.size - shard.index) / shard.count));
}

export async function runShardedJob(o: ShardedJobOptions): Promise<ShardedJobResult> {
  if (isRandomAccess(o.source) && !Number.isFinite(o.source.size)) throw new ConfigError(`--data: ${o.source.name} is endless; give it a count (e.g. scenes:64:2000)`);
  mkdirSync(o.out, { recursive: true });
  const manifestPath = join(o.out, manifestName(o.shard));
  const previous = readManifest(manifestPath);
  if (previous) {
    const key = configDifference(previous.config, o.config);
    if (key !== undefined || previous.job !== o.job) {
      throw new ConfigError(`--out ${o.out}: holds a ${previous.job} written with other arguments (${key ?? 'job'}: ${JSON.stringify(previous.config[key ?? ''])} there, ${JSON.stringify(o.config[key ?? ''])} now); use another --out`);
    }
  }
  const shardTag = o.shard.count === 1 ? '' : `${o.shard.index}of${o.shard.count}-`;
  for (const t of o.tables) removePartials(o.out, `${t.name}-${shardTag}`);
  const now = new Date().toISOString();
  const manifest: Manifest = previous ?? {
    format: 'densestream-manifest', version: 1, job: o.job, config: o.config, seed: o.seed,
    shard: { index: o.shard.index, count: o.shard.count }, versions: versions(), parts: [], complete: false, createdAt: now, updatedAt: now,
  };
  const done = new Map(manifest.parts.filter((p) => partIsDone(o.out, p)).map((p) => [p.part, p]));
  manifest.parts = [...done.values()];
  const total = shardSize(o.source, o.shard);
  const parts = total === undefined ? Infinity : Math.ceil(total / o.rowsPerFile);
  const skipLog = openSkipLog(join(o.out, `skipped${o.shard.count === 1 ? '' : `-${o.shard.index}of${o.shard.count}`}.jsonl`));
  const meter = progressMeter(o.job, total, o.progress !== false);
  let rows = 0;
  let written = 0;
  let skipped = 0;
  let writeMs = 0;
  const timed = (f: TableFile): TableFile => ({
    write: async (t) => { const t0 = performance.now(); try { await f.write(t); } finally { writeMs += performance.now() - t0; } },
    close: async () => { const t0 = performance.now(); try { return await f.close(); } finally { writeMs += performance.now() - t0; } },
    abort: () => f.abort(),
  });
  try {
    for (let p = 0; p < parts; p++) {
      const finished = done.get(p);
      if (finished) {
        rows += finished.rows;
        meter.advance(finished.samples);
        if (finished.samples < o.rowsPerFile) break;
        continue;
      }
      const files: Record<string, TableFile> = {};
      for (const t of o.tables) files[t.name] = timed(openTableFile(join(o.out, partName(t.name, o.shard, p, o.format)), t.schema, { format: o.format, codec: o.codec, rowGroupRows: o.rowGroupRows }));
      let positions = 0;
      let partSkipped = 0;
      const onSkip = (r: SkipRecord) => { partSkipped++; skipLog.record(r); };
      async function* counted(): AsyncGenerator<Sample> {
        for await (const s of readSamples(o.source, { seed: o.seed, shard: o.shard, shuffle: false, skip: p * o.rowsPerFile, limit: o.rowsPerFile }, (r) => { positions++; meter.advance(1); onSkip(r); })) {
          positions++;
          meter.advance(1);
          yield s;
        }
      }
      let partRows: number;
      try {
        partRows = await o.writePart(counted(), files, onSkip, (r) => skipLog.record(r));
      } catch (err) {
        await Promise.all(Object.values(files).map((f) => f.abort()));
        throw err;
      }
      if (positions === 0 && partRows === 0 && total === undefined) {
        await Promise.all(Object.values(files).map((f) => f.abort())); // a stream's end: no empty part
        break;
      }
      const entry: ManifestPart = { part: p, samples: positions, rows: partRows, skipped: partSkipped, files: {} };
      for (const [name, f] of Object.entries(files)) entry.files[name] = { ...(await f.close()), file: partName(name, o.shard, p, o.format) };
      manifest.parts.push(entry);
      manifest.parts.sort((a, b) => a.part - b.part);
      manifest.updatedAt = new Date().toISOString();
      writeManifest(manifestPath, manifest);
      rows += partRows;
      written++;
      skipped += partSkipped;
            if (positions < o.rowsPerFile) break;
    }
    // Parts past the end (a source that shrank since the last run) are not this output's.
    const last = manifest.parts.findIndex((p) => p.samples < o.rowsPerFile);
    for (const stale of last >= 0 ? manifest.parts.slice(last + 1) : []) {
      for (const f of Object.values(stale.files)) rmSync(join(o.out, basename(f.file)), { force: true });
    }
    if (last >= 0) manifest.parts = manifest.parts.slice(0, last + 1);
    manifest.complete = true;
    manifest.updatedAt = new Date().toISOString();
    writeManifest(manifestPath, manifest);
  } finally {
    meter.end();
    const n = await skipLog.close();
    if (n > 0 && o.progress !== false) process.stderr.write(`${skipSummary(o.source.name, n, skipLog)}\n`);
  }
  return { manifest: manifestPath, rows, partsWritten: written, partsSkipped: done.size, skipped, writeSeconds: writeMs / 1000 };
}
