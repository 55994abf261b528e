/**
 * `npm run bench -- export [--rows 10000] [--small 2000] [--format parquet] [--codec lz4]`: export
 * throughput and memory with the default (slim, random-init) encoder on scenes. Each size runs
 * in its own process so peak RSS is that run's alone; a line per size, then the summary:
 * `{"bench":"export","rows","rowsPerSec","mbPerSec","peakRssMb","peakRssSmallMb","rssGrowth","writeFraction","format","codec"}`.
 * Targets: peak RSS flat in the row count (within 10 % from 2 000 to 10 000 rows); writing
 * under 10 % of wall time.
 */
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { selectBackend } from '../models/backend.js';
import { runExport } from '../pipelines/export.js';
import { parseExportConfig } from '../pipelines/export-options.js';
import { positiveInt } from '../pipelines/options.js';
import { benchFile, printJson, runForJson } from './report.js';

interface SizeRecord {
  rows: number;
  seconds: number;
  rowsPerSec: number;
  mbPerSec: number;
  peakRssMb: number;
  writeFraction: number;
  format: string;
  codec: string;
}

export async function exportBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string', default: '10000' },
      small: { type: 'string', default: '2000' },
      format: { type: 'string', default: 'parquet' },
      codec: { type: 'string', default: 'lz4' },
      single: { type: 'boolean', default: false },
    },
  });
  const rows = positiveInt(values.rows, '--rows');
  if (values.single) {
    const out = mkdtempSync(join(tmpdir(), 'densestream-bench-export-'));
    try {
      const config = parseExportConfig([
        '--data',
        `scenes:64:${rows}`,
        '--out',
        out,
        '--format',
        values.format,
        '--codec',
        values.codec,
        '--quiet',
      ]);
      await selectBackend('wasm');
      const start = performance.now();
      const result = await runExport(config);
      const seconds = (performance.now() - start) / 1000;
      const bytes = readdirSync(out).reduce((n, f) => n + statSync(join(out, f)).size, 0);
      printJson({
        bench: 'export-size',
        rows: result.rows,
        seconds,
        rowsPerSec: result.rows / seconds,
        mbPerSec: bytes / 1e6 / seconds,
        peakRssMb: process.resourceUsage().maxRSS / 1024,
        writeFraction: result.writeSeconds / seconds,
        format: values.format,
        codec: values.codec,
      });
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    return;
  }
  const run = (n: number) =>
    runForJson<SizeRecord>(`export bench ${n} rows`, process.execPath, [
      benchFile('run.js'),
      'export',
      '--single',
      '--rows',
      `${n}`,
      '--format',
      values.format,
      '--codec',
      values.codec,
    ]);
  const small = run(positiveInt(values.small, '--small'));
  const large = run(rows);
  printJson({
    bench: 'export',
    rows: large.rows,
    rowsPerSec: large.rowsPerSec,
    mbPerSec: large.mbPerSec,
    peakRssMb: large.peakRssMb,
    peakRssSmallMb: small.peakRssMb,
    rssGrowth: large.peakRssMb / small.peakRssMb - 1,
    writeFraction: large.writeFraction,
    format: large.format,
    codec: large.codec,
  });
}
