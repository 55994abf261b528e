/**
 * One output table file, Arrow IPC stream or Parquet, written a batch of rows at a time so
 * memory holds one batch whatever the file's total: each `write` becomes one Arrow record
 * batch; Parquet rows are cut into row groups of `rowGroupRows`. The file appears under its final name only on `close()`.
 *
 * Parquet goes through parquet-wasm (arrow-rs compiled to wasm): Arrow batches in, Parquet
 * out, with zstd, FixedSizeList columns and the Arrow schema kept. Why this library and not
 * the brief's parquetjs-lite: see the README ("Parquet library").
 */
import * as arrow from 'apache-arrow';
import { once } from 'node:events';
import { createWriteStream, openAsBlob, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import * as pq from 'parquet-wasm';
import { partialPath, sha256File } from '../core/atomic-file.js';
import type { ParquetCodec, TableFormat } from './table-formats.js';

const CODEC: Record<ParquetCodec, pq.Compression> = {
  zstd: pq.Compression.ZSTD,
  snappy: pq.Compression.SNAPPY,
  lz4: pq.Compression.LZ4_RAW,
  none: pq.Compression.UNCOMPRESSED,
};

/** The file extension of a format. */
export function tableExtension(format: TableFormat): string {
  return format === 'parquet' ? 'parquet' : 'arrows';
}

export interface TableFileOptions {
  format: TableFormat;
  /** Parquet compression (default zstd). */
  codec?: ParquetCodec;
  /** Parquet rows per row group (default 1024): the writer holds at most this many rows encoded. */
  rowGroupRows?: number;
}

/** A finished file, as a manifest lists it. */
export interface WrittenFile {
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
}

export interface TableFile {
  /** Appends `table`'s rows (its schema must be the file's); resolves when they are handed to the file. */
  write(table: arrow.Table): Promise<void>;
  /** Completes the file and renames it to its final name. */
  close(): Promise<WrittenFile>;
  /** Drops the partial file; the final name is never created. */
  abort(): Promise<void>;
}

interface ByteSink {
  write(table: arrow.Table): Promise<void>;
  finish(): Promise<void>;
  destroy(): void;
}

/** A table of `schema` with no rows (a part whose inputs were all skipped is still a valid file). */
function emptyTable(schema: arrow.Schema): arrow.Table {
  const children = schema.fields.map((f) => arrow.vectorFromArray([], f.type).data[0] as arrow.Data);
  const struct = arrow.makeData({ type: new arrow.Struct(schema.fields), length: 0, nullCount: 0, children });
  return new arrow.Table(schema, [new arrow.RecordBatch(schema, struct)]);
}

function arrowSink(schema: arrow.Schema, out: WriteStream): ByteSink {
  const writer = new arrow.RecordBatchStreamWriter();
  writer.reset(undefined, schema);
  writer.pipe(out);
  return {
    async write(table) {
      for (const b of table.batches) writer.write(b);
      if (out.writableNeedDrain) await once(out, 'drain'); // rejects if the stream fails
    },
    async finish() {
      writer.finish();
      await finished(out);
    },
    destroy: () => out.destroy(),
  };
}

/**
 * parquet-wasm's writer pulls record batches from a ReadableStream; `write` hands one table
 * over and waits until the writer has taken it, so no more than one batch waits in memory. Its
 * output is written with Node's backpressure: piping the web stream through `Writable.toWeb`
 * would not wait for the disk on Node 20 (nodejs/node#62986) and let output pile up.
 */
function parquetSink(schema: arrow.Schema, out: WriteStream, codec: ParquetCodec, rowGroupRows: number): ByteSink {
  const props = new pq.WriterPropertiesBuilder()
    .setCompression(CODEC[codec])
    .setMaxRowGroupSize(rowGroupRows)
    // Dictionaries never pay for float features and cost 7× the write time (measured: 4.15 vs
    // 0.58 ms per 8 320-float row, uncompressed); ids are unique.
    .setDictionaryEnabled(false)
    .setKeyValueMetadata(new Map(schema.metadata))
    .build();
  let offered: pq.RecordBatch[] = [];
  let anyOffered = false;
  let taken: (() => void) | undefined;
  let wake: (() => void) | undefined;
  let ended = false;
  let failure: unknown;
  const batches = new ReadableStream<pq.RecordBatch>(
    {
      async pull(controller) {
        while (offered.length === 0 && !ended) await new Promise<void>((r) => (wake = r));
        const next = offered.shift();
        if (next) controller.enqueue(next);
        else controller.close();
        if (offered.length === 0) taken?.();
      },
    },
    { highWaterMark: 0 },
  );
  const done = (async () => {
    const bytes = (await pq.transformParquetStream(batches, props)) as ReadableStream<Uint8Array>;
    for await (const chunk of bytes) if (!out.write(chunk)) await once(out, 'drain');
    // The writer stops quietly on some errors; a file it ended early must not look complete.
    if (!ended) throw new Error('parquet-wasm stopped writing before the file was complete');
    out.end();
    await finished(out);
  })();
  done.catch((err: unknown) => {
    failure = err;
    taken?.();
  });
  const offer = async (table: arrow.Table) => {
    if (failure) throw failure;
    const wasm = pq.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'));
    try {
      offered = wasm.recordBatches();
    } finally {
      wasm.free(); // wasm memory is not garbage-collected promptly: free what we made
    }
    if (offered.length === 0) return;
    anyOffered = true;
    const handed = new Promise<void>((r) => (taken = r));
    wake?.();
    await handed;
    if (failure) throw failure;
  };
  return {
    write: offer,
    async finish() {
      if (!anyOffered) await offer(emptyTable(schema)); // parquet-wasm needs one batch to write a file
      ended = true;
      wake?.();
      await done;
    },
    destroy() {
      ended = true;
      for (const b of offered) b.free();
      offered = [];
      wake?.();
      out.destroy();
    },
  };
}

/** The row count in a Parquet file's footer. */
async function parquetRows(path: string): Promise<number> {
  const file = await pq.ParquetFile.fromFile(await openAsBlob(path));
  try {
    const meta = file.metadata();
    const rows = meta.fileMetadata().numRows();
    meta.free();
    return rows;
  } finally {
    file.free();
  }
}

const signature = (s: arrow.Schema) => s.fields.map((f) => `${f.name}:${String(f.type)}:${f.nullable}`).join(',');

/**
 * Opens `path` for writing (as a temporary file next to it). Every table written must have
 * `schema`; its metadata (schema name and version, grid sizes) goes into the file.
 */
export function openTableFile(path: string, schema: arrow.Schema, options: TableFileOptions): TableFile {
  const partial = partialPath(path);
  const out = createWriteStream(partial);
  let failure: unknown;
  out.on('error', (err) => {
    failure = err;
  });
  const sink =
    options.format === 'parquet' ? parquetSink(schema, out, options.codec ?? 'zstd', options.rowGroupRows ?? 1024) : arrowSink(schema, out);
  const expected = signature(schema);
  let rows = 0;
  return {
    async write(table) {
      if (failure) throw failure;
      if (signature(table.schema) !== expected) throw new Error(`${path}: rows do not match the file's schema`);
      rows += table.numRows;
      await sink.write(table);
    },
    async close() {
      if (failure) throw failure;
      await sink.finish();
      if (failure) throw failure;
      // Trust the footer, not our count: a file whose rows went missing must not be renamed.
      if (options.format === 'parquet') {
        const stored = await parquetRows(partial);
        if (stored !== rows) throw new Error(`${path}: wrote ${rows} rows but the file holds ${stored}`);
      }
      const sha256 = await sha256File(partial);
      const bytes = statSync(partial).size;
      renameSync(partial, path);
      return { file: path, rows, bytes, sha256 };
    },
    async abort() {
      sink.destroy();
      // The file may still be opening: remove it only once the stream has closed.
      if (!out.closed) await once(out, 'close').catch(() => undefined);
      rmSync(partial, { force: true });
    },
  };
}
