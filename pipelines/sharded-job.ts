/**
 * What `precompute` and `export` share: this shard's samples cut into parts of R source
 * positions, each part written as one file per table under a temporary name and renamed when
 * whole, the manifest rewritten after each part. A re-run with the same arguments skips the
 * parts the manifest lists (files present at their listed sizes) and redoes the rest; the
 * output is deterministic, so a redone part holds the rows it would have held, in the same
 * order. (Not always the same bytes: parquet-wasm writes a file's key-value metadata in an
 * order that differs from process to process.)
 *
 * Part p holds the positions [p·R, (p+1)·R) of the shard's index order (unshuffled), so its
 * content depends only on the arguments — never on when the previous run was killed.
 */
import type * as arrow from 'apache-arrow';
import { join } from 'node:path';
import { isInputSkip, isRandomAccess, readSamples, type Shard, type Source } from '../datasets/source.js';
import type { Sample, SkipRecord } from '../core/index.js';
import { removePartials } from '../core/atomic-file.js';
import {
  configDifference,
  manifestName,
  partIsDone,
  readManifest,
  writeManifest,
  type Manifest,
  type ManifestPart,
} from '../sinks/manifest.js';
import { openSkipLog, skipSummary } from '../sinks/skip-log.js';
import { openTableFile, tableExtension, type TableFile } from '../sinks/table-file.js';
import type { ParquetCodec, TableFormat } from '../sinks/table-formats.js';
import { ConfigError } from '../core/config-error.js';
import { prepareOutFolder } from './out-folder.js';
import { packageJson } from './package-json.js';
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
  /** Values of `config` keys that outputs written before the key existed had, for comparing with them on a resume. */
  previousDefaults?: Record<string, unknown>;
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
  const own = packageJson();
  const pinned = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', 'apache-arrow', 'parquet-wasm', 'sharp'];
  return {
    densestream: own.version,
    node: process.versions.node,
    ...Object.fromEntries(pinned.map((p) => [p, own.dependencies[p] ?? 'unknown'])),
  };
}

function partName(table: string, shard: Shard, part: number, format: TableFormat): string {
  const tag = shard.count === 1 ? '' : `${shard.index}of${shard.count}-`;
  return `${table}-${tag}${String(part).padStart(5, '0')}.${tableExtension(format)}`;
}

/** The part number of this shard's file `name` (final or partial), else undefined. */
function partNumber(name: string, table: string, shard: Shard, format: TableFormat): number | undefined {
  const tag = shard.count === 1 ? '' : `${shard.index}of${shard.count}-`;
  const m = new RegExp(`^${table}-${tag}(\\d{5})\\.${tableExtension(format)}(\\.partial-\\d+)?$`).exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Positions in this shard, or undefined for a stream whose length is known only at its end. */
function shardSize(source: Source, shard: Shard): number | undefined {
  if (!isRandomAccess(source) || !Number.isFinite(source.size)) return undefined;
  return Math.max(0, Math.ceil((source.size - shard.index) / shard.count));
}

/**
 * One position of the shard's order: a sample, or an input the source could not read. A note
 * (a retried transfer, a remote shard passed over) is logged but holds no position, so that
 * faults, which differ from run to run, do not move the parts' boundaries.
 */
type Position = { sample: Sample } | { skip: SkipRecord } | { note: SkipRecord };

/** The shard's positions in order, read skips included, from position `from` on. */
async function* positions(source: Source, shard: Shard, seed: number, from: number, limit = Infinity): AsyncGenerator<Position> {
  const skips: SkipRecord[] = [];
  const drain = function* (): Generator<Position> {
    while (skips.length > 0) {
      const r = skips.shift() as SkipRecord;
      yield isInputSkip(r) ? { skip: r } : { note: r };
    }
  };
  for await (const sample of readSamples(source, { seed, shard, shuffle: false, skip: from, limit }, (r) => skips.push(r))) {
    yield* drain();
    yield { sample };
  }
  yield* drain();
}

export async function runShardedJob(o: ShardedJobOptions): Promise<ShardedJobResult> {
  if (isRandomAccess(o.source) && !Number.isFinite(o.source.size))
    throw new ConfigError(`--data: ${o.source.name} is endless; give it a count (e.g. scenes:64:2000)`);
  const total = shardSize(o.source, o.shard);
  // The source's extent is part of the output's identity: parts cover fixed positions.
  const config = { ...o.config, source: o.source.name, positions: total ?? null };
  prepareOutFolder(o.out);
  const manifestPath = join(o.out, manifestName(o.shard));
  const previous = readManifest(manifestPath);
  if (previous) {
    const before: Record<string, unknown> = { ...o.previousDefaults, ...previous.config };
    const key = configDifference(before, config);
    if (key !== undefined || previous.job !== o.job) {
      throw new ConfigError(
        `--out ${o.out}: holds a ${previous.job} written with other arguments or another source (${key ?? 'job'}: ${JSON.stringify(before[key ?? ''])} there, ${JSON.stringify(config[key as keyof typeof config])} now); use another --out`,
      );
    }
  }
  for (const t of o.tables) removePartials(o.out, (name) => partNumber(name, t.name, o.shard, o.format) !== undefined);
  const now = new Date().toISOString();
  const manifest: Manifest = previous ?? {
    format: 'densestream-manifest',
    version: 1,
    job: o.job,
    config,
    seed: o.seed,
    shard: { index: o.shard.index, count: o.shard.count },
    versions: versions(),
    parts: [],
    complete: false,
    createdAt: now,
    updatedAt: now,
  };
  // A listed part counts as done only with its files intact and, for a known length, all its positions.
  const expected = (p: number) => (total === undefined ? undefined : Math.min(o.rowsPerFile, total - p * o.rowsPerFile));
  const done = new Map(
    manifest.parts
      .filter((p) => partIsDone(o.out, p) && (expected(p.part) === undefined || p.samples === expected(p.part)))
      .map((p) => [p.part, p]),
  );
  manifest.parts = [...done.values()];
  const parts = total === undefined ? Infinity : Math.ceil(total / o.rowsPerFile);
  const skipLog = openSkipLog(join(o.out, `skipped${o.shard.count === 1 ? '' : `-${o.shard.index}of${o.shard.count}`}.jsonl`));
  const meter = progressMeter(o.job, total, o.progress !== false);
  let rows = 0;
  let written = 0;
  let skipped = 0;
  let writeMs = 0;
  let shardsPassed = 0; // remote shards skipped whole (--on-missing-shard skip): one record each
  const timed = (f: TableFile): TableFile => ({
    write: async (t) => {
      const t0 = performance.now();
      try {
        await f.write(t);
      } finally {
        writeMs += performance.now() - t0;
      }
    },
    close: async () => {
      const t0 = performance.now();
      try {
        return await f.close();
      } finally {
        writeMs += performance.now() - t0;
      }
    },
    abort: () => f.abort(),
  });
  // A stream is read once, front to back, and cut into parts as it goes (done parts are read
  // past, not re-read per part); a random-access source jumps to each part's first position.
  const stream = total === undefined ? positions(o.source, o.shard, o.seed, 0) : undefined;
  try {
    for (let p = 0; p < parts; p++) {
      const finished = done.get(p);
      if (finished && total !== undefined) {
        rows += finished.rows;
        skipped += finished.skipped;
        meter.alreadyDone(finished.samples);
        continue;
      }
      const source = stream ?? positions(o.source, o.shard, o.seed, p * o.rowsPerFile, o.rowsPerFile);
      let taken = 0;
      let partSkipped = 0;
      const passed: string[] = []; // remote shards passed over while this part's positions were read
      const onSkip = (r: SkipRecord) => {
        partSkipped++;
        skipLog.record(r);
      };
      // This part's R positions; read skips are reported as they pass.
      async function* partSamples(): AsyncGenerator<Sample> {
        while (taken < o.rowsPerFile) {
          const next = await source.next();
          if (next.done) return;
          if ('note' in next.value) {
            skipLog.record(next.value.note);
            if (next.value.note.stage === 'shard') {
              shardsPassed++;
              passed.push(next.value.note.id);
            }
            continue;
          }
          taken++;
          meter.advance(1);
          if ('skip' in next.value) onSkip(next.value.skip);
          else yield next.value.sample;
        }
      }
      if (finished) {
        // a stream's done part: read past its positions
        for await (const _ of partSamples()) {
          /* already written */
        }
        // A shard passed over then and read now (or the other way) moves every later position.
        const before = (finished.shardsPassed ?? []).join(', ');
        if (passed.join(', ') !== before)
          throw new Error(
            `--data ${o.source.name}: part ${p} was written with ${before ? `shard(s) ${before} passed over` : 'every shard read'}, and now ${passed.length > 0 ? `${passed.join(', ')} ${passed.length === 1 ? 'is' : 'are'} passed over` : 'every shard was read'}; its positions moved, use another --out`,
          );
        if (taken === finished.samples) {
          rows += finished.rows;
          skipped += finished.skipped;
          if (taken < o.rowsPerFile) break;
          continue;
        }
        throw new Error(
          `--data ${o.source.name}: part ${p} had ${finished.samples} positions last time and ${taken} now; the source changed, use another --out`,
        );
      }
      const files: Record<string, TableFile> = {};
      for (const t of o.tables)
        files[t.name] = timed(
          openTableFile(join(o.out, partName(t.name, o.shard, p, o.format)), t.schema, {
            format: o.format,
            codec: o.codec,
            rowGroupRows: o.rowGroupRows,
          }),
        );
      const entry: ManifestPart = { part: p, samples: 0, rows: 0, skipped: 0, files: {} };
      try {
        entry.rows = await o.writePart(partSamples(), files, onSkip, (r) => skipLog.record(r));
        entry.samples = taken;
        entry.skipped = partSkipped;
        if (passed.length > 0) entry.shardsPassed = passed;
        if (taken === 0 && total === undefined) {
          // a stream's end: no empty part
          await Promise.all(Object.values(files).map((f) => f.abort()));
          break;
        }
        for (const [name, f] of Object.entries(files))
          entry.files[name] = { ...(await f.close()), file: partName(name, o.shard, p, o.format) };
      } catch (err) {
        await Promise.all(Object.values(files).map((f) => f.abort()));
        throw err;
      }
      manifest.parts.push(entry);
      manifest.parts.sort((a, b) => a.part - b.part);
      manifest.updatedAt = new Date().toISOString();
      writeManifest(manifestPath, manifest);
      rows += entry.rows;
      written++;
      skipped += entry.skipped;
      if (taken < o.rowsPerFile) break;
    }
    manifest.complete = true;
    manifest.updatedAt = new Date().toISOString();
    writeManifest(manifestPath, manifest);
  } finally {
    await stream?.return(undefined);
    meter.end();
    await skipLog.close();
    if (skipped + shardsPassed + skipLog.retries > 0 && o.progress !== false)
      process.stderr.write(`${skipSummary(o.source.name, skipped + shardsPassed, skipLog)}\n`);
  }
  return { manifest: manifestPath, rows, partsWritten: written, partsSkipped: done.size, skipped, writeSeconds: writeMs / 1000 };
}
