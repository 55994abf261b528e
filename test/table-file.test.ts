import * as arrow from 'apache-arrow';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pq from 'parquet-wasm';
import { describe, expect, it } from 'vitest';
import { featuresSchema, int32s, strings, tableOf, vectorColumn } from '../sinks/schemas.js';
import { openTableFile } from '../sinks/table-file.js';

const shape = { embedding: 16, gridH: 8, gridW: 8, channels: 16 };
const schema = featuresSchema(shape);
const rowsOf = (n: number, from: number) =>
  tableOf(schema, {
    id: strings(Array.from({ length: n }, (_, i) => `s${from + i}`)),
    label: int32s(Array.from({ length: n }, (_, i) => (i % 3 === 0 ? undefined : i))),
    embedding: vectorColumn(
      Float32Array.from({ length: n * 16 }, (_, i) => Math.sin(i + from)),
      16,
    ),
    dense: vectorColumn(new Float32Array(n * 1024).fill(from), 1024),
  });

describe('table files', () => {
  it('keeps wasm and JS buffers bounded while 200 MB of rows stream into one Parquet file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'densestream-table-'));
    const file = openTableFile(join(dir, 'big.parquet'), schema, { format: 'parquet', codec: 'lz4', rowGroupRows: 128 });
    const wasmBefore = pq.wasmMemory().buffer.byteLength;
    let peakBuffers = 0;
    for (let b = 0; b < 400; b++) {
      // 128 rows × 4.2 KB = 0.5 MB a batch
      await file.write(rowsOf(128, b * 128));
      peakBuffers = Math.max(peakBuffers, process.memoryUsage().arrayBuffers);
    }
    const written = await file.close();
    expect(written.rows).toBe(51_200);
    // Without freeing each wasm table, wasm memory grew by ~500 MB here; without Node's
    // backpressure on the output, JS buffers held the whole file until close.
    expect(pq.wasmMemory().buffer.byteLength - wasmBefore).toBeLessThan(64 * 2 ** 20);
    expect(peakBuffers).toBeLessThan(96 * 2 ** 20);
    const meta = (await pq.ParquetFile.fromFile(new Blob([readFileSync(join(dir, 'big.parquet'))]))).metadata();
    expect(meta.numRowGroups()).toBe(400);
  });

  it('writes a valid file with the schema and no rows, and abort leaves nothing behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'densestream-table-'));
    for (const format of ['parquet', 'arrow'] as const) {
      const empty = await openTableFile(join(dir, `empty.${format}`), schema, { format }).close();
      expect(empty.rows).toBe(0);
      const bytes = readFileSync(join(dir, `empty.${format}`));
      const table = format === 'parquet' ? arrow.tableFromIPC(pq.readParquet(bytes).intoIPCStream()) : arrow.tableFromIPC(bytes);
      expect(table.numRows).toBe(0);
      expect(table.schema.metadata.get('densestream.schema')).toBe('features/1');
      const aborted = openTableFile(join(dir, `aborted.${format}`), schema, { format });
      await aborted.write(rowsOf(4, 0));
      await aborted.abort();
      expect(existsSync(join(dir, `aborted.${format}`))).toBe(false);
    }
    expect(readdirSync(dir).filter((f) => f.includes('.partial')).length).toBe(0);
  });

  it('refuses rows of another schema', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'densestream-table-'));
    const file = openTableFile(join(dir, 'x.arrows'), featuresSchema({ ...shape, channels: 8 }), { format: 'arrow' });
    await expect(file.write(rowsOf(2, 0))).rejects.toThrow("rows do not match the file's schema");
    await file.abort();
  });
});
