import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import * as arrow from 'apache-arrow';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../sinks/manifest.js';
import { tarOf } from '../bench/tar-of.js';
import { CLI } from './helpers/cli.js';

const exportCli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, 'export', '--quiet', '--threads', '1', ...args], { encoding: 'utf8' });
const manifestOf = (dir: string, name = 'manifest.json') => JSON.parse(readFileSync(join(dir, name), 'utf8')) as Manifest;

let db: DuckDBConnection;
const sql = async (q: string) => (await db.runAndReadAll(q)).getRows();
let root: string;

beforeAll(async () => {
  db = await (await DuckDBInstance.create(':memory:')).connect();
  root = mkdtempSync(join(tmpdir(), 'densestream-export-'));
});
afterAll(() => db.closeSync());

describe('densestream export', () => {
  it('writes Parquet that DuckDB reads back row for row, and Arrow IPC with the same values', async () => {
    const pq = join(root, 'pq');
    const run = exportCli('--data', 'scenes:64:70', '--size', '64', '--out', pq, '--rows-per-file', '32', '--batch', '16');
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ rows: 70, partsWritten: 3, skipped: 0 });
    const [[count, ids, len, dense, labels]] = (await sql(
      `SELECT count(*), count(DISTINCT id), avg(len(embedding)), avg(len(dense)), count(label) FROM read_parquet('${pq}/*.parquet')`,
    )) as [[bigint, bigint, number, number, bigint]];
    expect([count, ids, len, dense]).toEqual([70n, 70n, 128, 8 * 8 * 128]);
    expect(labels).toBe(70n); // scenes carry a label
    const m = manifestOf(pq);
    expect(m.complete).toBe(true);
    expect(m.parts.map((p) => p.files['features']?.rows)).toEqual([32, 32, 6]);
    const kv = await sql(
      `SELECT value::VARCHAR FROM parquet_kv_metadata('${pq}/features-00000.parquet') WHERE key::VARCHAR = 'densestream.schema'`,
    );
    expect(kv).toEqual([['features/1']]);

    const ipc = join(root, 'ipc');
    expect(exportCli('--data', 'scenes:64:70', '--size', '64', '--out', ipc, '--rows-per-file', '32', '--format', 'arrow').status).toBe(0);
    const tables = readdirSync(ipc)
      .filter((f) => f.endsWith('.arrows'))
      .sort()
      .map((f) => arrow.tableFromIPC(readFileSync(join(ipc, f))));
    expect(tables.reduce((n, t) => n + t.numRows, 0)).toBe(70);
    const first = tables[0] as arrow.Table;
    expect(first.schema.metadata.get('grid_h')).toBe('8');
    // Same encoder, same images: the Arrow file's vectors are DuckDB's (batch size aside).
    const id = String(first.getChild('id')?.get(5));
    const fromArrow = Array.from(first.getChild('embedding')?.get(5)?.toArray() as Float32Array);
    const [[fromDuck]] = (await sql(`SELECT embedding FROM read_parquet('${pq}/*.parquet') WHERE id = '${id}'`)) as [[{ items: number[] }]];
    expect(fromDuck.items.length).toBe(128);
    fromDuck.items.forEach((v, i) => expect(v).toBeCloseTo(fromArrow[i] as number, 5));
  });

  it('writes one row per grid cell with --dense cells', async () => {
    const out = join(root, 'cells');
    expect(exportCli('--data', 'scenes:64:10', '--size', '64', '--out', out, '--dense', 'cells').status).toBe(0);
    const [[count, images, cells, width]] = (await sql(
      `SELECT count(*), count(DISTINCT id), count(DISTINCT (y, x)), avg(len(vector)) FROM read_parquet('${out}/*.parquet')`,
    )) as [[bigint, bigint, bigint, number]];
    expect([count, images, cells, width]).toEqual([640n, 10n, 64n, 128]);
  });

  it('three shards together equal one unsharded export', async () => {
    const whole = join(root, 'whole');
    const parts = join(root, 'sharded');
    expect(exportCli('--data', 'scenes:32:40', '--size', '32', '--out', whole, '--rows-per-file', '16').status).toBe(0);
    for (const i of [0, 1, 2]) {
      const run = exportCli('--data', 'scenes:32:40', '--size', '32', '--out', parts, '--rows-per-file', '16', '--shard', `${i}/3`);
      expect(run.status, run.stderr).toBe(0);
    }
    expect(
      readdirSync(parts)
        .filter((f) => f.startsWith('manifest'))
        .sort(),
    ).toEqual(['manifest-0of3.json', 'manifest-1of3.json', 'manifest-2of3.json']);
    const rows = async (dir: string) =>
      sql(`SELECT id, embedding FROM read_parquet('${dir}/*.parquet') ORDER BY id`) as Promise<Array<[string, { items: number[] }]>>;
    const a = await rows(whole);
    const b = await rows(parts);
    expect(b.map((r) => r[0])).toEqual(a.map((r) => r[0]));
    expect(new Set(a.map((r) => r[0])).size).toBe(40);
    let worst = 0;
    a.forEach(([, v], i) =>
      v.items.forEach((x, k) => {
        worst = Math.max(worst, Math.abs(x - ((b[i] as [string, { items: number[] }])[1].items[k] as number)));
      }),
    );
    expect(worst).toBeLessThan(1e-4);
  });

  it('survives SIGKILL mid-way: the re-run finishes exactly, keeps finished parts, leaves no temporary file', async () => {
    const out = join(root, 'killed');
    const args = [
      CLI,
      'export',
      '--quiet',
      '--threads',
      '1',
      '--data',
      'scenes:32:2000',
      '--size',
      '32',
      '--out',
      out,
      '--rows-per-file',
      '200',
    ];
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    // Kill once a few parts are listed: mid-part, with a partial file open.
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        try {
          if (existsSync(join(out, 'manifest.json')) && manifestOf(out).parts.length >= 3) {
            clearInterval(timer);
            child.kill('SIGKILL');
            resolve();
          }
        } catch {
          /* the manifest is being renamed into place; look again */
        }
      }, 20);
      child.on('exit', () => {
        clearInterval(timer);
        reject(new Error('export finished before it could be killed'));
      });
    });
    await new Promise((r) => child.once('exit', r));
    const before = manifestOf(out);
    expect(before.complete).toBe(false);
    const rerun = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(rerun.status, rerun.stderr).toBe(0);
    const after = manifestOf(out);
    expect(after.complete).toBe(true);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ rows: 2000, partsSkipped: before.parts.length });
    for (const p of before.parts) expect(after.parts[p.part]?.files['features']?.sha256).toBe(p.files['features']?.sha256);
    expect(readdirSync(out).filter((f) => f.includes('.partial'))).toEqual([]);
    const [[count, ids]] = (await sql(`SELECT count(*), count(DISTINCT id) FROM read_parquet('${out}/*.parquet')`)) as [[bigint, bigint]];
    expect([count, ids]).toEqual([2000n, 2000n]);
  });

  it('skips and records broken images, and refuses a changed re-run or a missing flag before any work', async () => {
    const photos = join(root, 'photos');
    mkdirSync(photos);
    const jpeg = await sharp({ create: { width: 48, height: 40, channels: 3, background: '#3a7' } })
      .jpeg()
      .toBuffer();
    for (const name of ['a.jpg', 'b.jpg', 'c.jpg']) writeFileSync(join(photos, name), jpeg);
    writeFileSync(join(photos, 'truncated.jpg'), jpeg.subarray(0, jpeg.length >> 1));
    writeFileSync(join(photos, 'empty.png'), new Uint8Array(0));
    const out = join(root, 'photos-out');
    const run = exportCli('--data', `dir:${photos}`, '--out', out);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ rows: 3, skipped: 2 });
    const skipped = readFileSync(join(out, 'skipped.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { id: string }).id)
      .sort();
    expect(skipped).toEqual(['empty.png', 'truncated.jpg']);

    const changed = exportCli('--data', `dir:${photos}`, '--out', out, '--dense', 'cells');
    expect(changed.status).toBe(2);
    expect(changed.stderr).toContain('written with other arguments or another source (dense: "grid" there, "cells" now)');
    // A grown folder is another source: its parts would cover other images.
    writeFileSync(join(photos, 'd.jpg'), jpeg);
    const grown = exportCli('--data', `dir:${photos}`, '--out', out);
    expect(grown.status).toBe(2);
    expect(grown.stderr).toContain('(positions: 5 there, 6 now)');
    const missing = exportCli('--data', 'scenes:64:10');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--out is required');
  });

  it('writes a valid empty part when all its inputs are broken, and reads a tar stream once, recording each bad input once', async () => {
    const jpeg = await sharp({ create: { width: 40, height: 40, channels: 3, background: '#a53' } })
      .jpeg()
      .toBuffer();
    const photos = join(root, 'half-broken');
    mkdirSync(photos);
    for (const name of ['a.jpg', 'b.jpg', 'e.jpg']) writeFileSync(join(photos, name), jpeg);
    writeFileSync(join(photos, 'c.jpg'), jpeg.subarray(0, 100)); // c and d: part 1 of R = 2, both broken
    writeFileSync(join(photos, 'd.jpg'), new Uint8Array(0));
    const out = join(root, 'half-broken-out');
    const run = exportCli('--data', `dir:${photos}`, '--out', out, '--rows-per-file', '2', '--size', '32');
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ rows: 3, skipped: 2, partsWritten: 3 });
    expect(manifestOf(out).parts.map((p) => p.rows)).toEqual([2, 0, 1]);
    const [[n]] = (await sql(`SELECT count(*) FROM read_parquet('${out}/features-00001.parquet')`)) as [[bigint]];
    expect(n).toBe(0n);

    // A tar of 5 good samples and one that is not an image, cut into parts of 2.
    const entries: Array<[string, Uint8Array]> = [];
    for (let i = 0; i < 6; i++) entries.push([`s${i}.jpg`, i === 3 ? new TextEncoder().encode('not a jpeg') : jpeg]);
    const tar = join(root, 'stream.tar');
    writeFileSync(tar, await tarOf(entries));
    const tarOut = join(root, 'stream-out');
    const t = exportCli('--data', `tar:${tar}`, '--out', tarOut, '--rows-per-file', '2', '--size', '32');
    expect(t.status, t.stderr).toBe(0);
    expect(JSON.parse(t.stdout)).toMatchObject({ rows: 5, skipped: 1 });
    expect(manifestOf(tarOut).parts.map((p) => p.samples)).toEqual([2, 2, 2]);
    expect(readFileSync(join(tarOut, 'skipped.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);
    const again = exportCli('--data', `tar:${tar}`, '--out', tarOut, '--rows-per-file', '2', '--size', '32'); // all done: read past, write nothing
    expect(JSON.parse(again.stdout)).toMatchObject({ rows: 5, partsWritten: 0, partsSkipped: 3 });
  });
});
