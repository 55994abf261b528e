/**
 * Jobs on remote shards, end to end through the CLI: `export --data tar:http://…` from a
 * loopback server that cuts connections, killed with SIGKILL and re-run, must write what an
 * uninterrupted export of the same shards from local disk writes; wrong remote flags are
 * refused before any work.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { spawn, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SkipRecord } from '../core/index.js';
import type { Manifest } from '../sinks/manifest.js';
import { FaultServer } from '../bench/fault-server.js';
import { tarOf } from '../bench/tar-of.js';
import { CLI } from './helpers/cli.js';

const SHARDS = 6;
const PER_SHARD = 10;

/** The CLI run asynchronously: the fault server answers from this process meanwhile. */
function cli(
  args: string[],
  options: SpawnOptions = {},
): { done: Promise<{ status: number | null; stdout: string; stderr: string }>; kill: () => void } {
  const child = spawn(process.execPath, [CLI, ...args], { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return {
    done: new Promise((resolve) => child.on('exit', (status) => resolve({ status, stdout, stderr }))),
    kill: () => child.kill('SIGKILL'),
  };
}

/** SIGKILLs `job` once `ready()` holds (checked every 20 ms; a throw, e.g. a file being renamed, counts as not yet). */
function killWhen(job: ReturnType<typeof cli>, ready: () => boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      try {
        if (!ready()) return;
      } catch {
        return;
      }
      clearInterval(timer);
      job.kill();
      resolve();
    }, 20);
    void job.done.then(() => {
      clearInterval(timer);
      reject(new Error('the job finished before it could be killed'));
    });
  });
}

/** A few `train` steps of MoCo v2 at 32 px from `data` into `out`, logged every step; `extra` sets batch, steps, queue. */
const tinyTrain = (data: string, out: string, ...extra: string[]) => [
  'train',
  '--data',
  data,
  '--out',
  out,
  '--method',
  'mocov2',
  '--size',
  '32',
  ...extra,
  '--log-every',
  '1',
  '--knn-every',
  '0',
  '--augment',
  'cpu',
  '--threads',
  '1',
  '--backend',
  'wasm',
];

/** The records of a JSON-lines file (`metrics.jsonl`, `skipped.jsonl`). */
const jsonLines = <T>(file: string): T[] =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as T);

const metricsOf = (out: string) => jsonLines<{ step: number; loss: number }>(join(out, 'metrics.jsonl'));

const manifestOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
let root: string;
let server: FaultServer;
let base: string;
let db: DuckDBConnection;
const sql = async (q: string) => (await db.runAndReadAll(q)).getRows();

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'densestream-remote-jobs-'));
  db = await (await DuckDBInstance.create(':memory:')).connect();
  server = new FaultServer();
  base = await server.start();
  for (let s = 0; s < SHARDS; s++) {
    const entries: Array<[string, Buffer]> = [];
    for (let i = 0; i < PER_SHARD; i++) {
      const jpeg = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: (s * 40) % 256, g: i * 20, b: 90 } } })
        .jpeg()
        .toBuffer();
      entries.push([`k/${s}-${i}.jpg`, jpeg], [`k/${s}-${i}.cls`, Buffer.from(String(i % 3))]);
    }
    const bytes = await tarOf(entries);
    const name = `shard-${String(s).padStart(3, '0')}.tar`;
    writeFileSync(join(root, name), bytes);
    server.objects.set(`/c/${name}`, bytes);
  }
});

afterAll(async () => {
  await server.close();
  db.closeSync();
});

const exportArgs = (data: string, out: string) => [
  'export',
  '--quiet',
  '--threads',
  '1',
  '--data',
  data,
  '--out',
  out,
  '--size',
  '32',
  '--rows-per-file',
  '10',
];

describe('jobs on remote shards', () => {
  it('export over HTTP, connections cut and the job SIGKILLed mid-way, resumes to what a clean local export writes', async () => {
    const local = join(root, 'local');
    const clean = await cli(exportArgs(`tar:${join(root, 'shard-{000..005}.tar')}`, local)).done;
    expect(clean.status, clean.stderr).toBe(0);

    // Every shard's first response breaks a third of the way in, and every response dawdles,
    // so that the job is still reading when it is killed.
    server.plan = (path, n) => (n === 0 ? { kind: 'cut', after: 3000 } : { kind: 'stall', after: 1000, ms: 250 });
    const out = join(root, 'remote');
    const args = [...exportArgs(`tar:${base}/c/shard-{000..005}.tar`, out), '--read-timeout', '5'];
    const first = cli(args);
    await killWhen(first, () => existsSync(join(out, 'manifest.json')) && manifestOf(out).parts.length >= 2);
    await first.done;
    expect(manifestOf(out).complete).toBe(false);
    const rerun = await cli(args).done;
    expect(rerun.status, rerun.stderr).toBe(0);
    const a = manifestOf(local);
    const b = manifestOf(out);
    expect(b.complete).toBe(true);
    // The same rows in the same parts: ids, order within each file, labels and features. (Not
    // byte for byte: parquet-wasm writes the key-value metadata in a per-process hash order.)
    expect(b.parts.map((p) => p.files['features']?.rows)).toEqual(a.parts.map((p) => p.files['features']?.rows));
    const rows = (dir: string) =>
      `SELECT parse_filename(filename) AS file, file_row_number AS row, id, label, embedding, dense FROM read_parquet('${dir}/*.parquet', filename = true, file_row_number = true)`;
    for (const [x, y] of [
      [out, local],
      [local, out],
    ]) {
      expect(await sql(`SELECT count(*) FROM (${rows(x as string)} EXCEPT ${rows(y as string)})`)).toEqual([[0n]]);
    }
    const [[count, ids]] = (await sql(`SELECT count(*), count(DISTINCT id) FROM read_parquet('${out}/*.parquet')`)) as [[bigint, bigint]];
    expect([count, ids]).toEqual([BigInt(SHARDS * PER_SHARD), BigInt(SHARDS * PER_SHARD)]);
    const log = jsonLines<SkipRecord>(join(out, 'skipped.jsonl'));
    expect(log.length).toBeGreaterThan(0);
    expect(log.every((r) => r.stage === 'fetch' && /^retry \d\/6 from byte \d+/.test(r.reason))).toBe(true);
  });

  it('train over HTTP with connections cut steps on the very batches a local run does', async () => {
    server.reset();
    server.plan = (_, n) => (n === 0 ? { kind: 'cut', after: 5000 } : undefined);
    const losses = async (data: string, out: string) => {
      const run = await cli(tinyTrain(data, out, '--batch', '8', '--steps', '4', '--queue', '64')).done;
      expect(run.status, run.stderr).toBe(0);
      return metricsOf(out).map((m) => m.loss);
    };
    const local = await losses(`tar:${join(root, 'shard-{000..005}.tar')}`, join(root, 'train-local'));
    const remote = await losses(`tar:${base}/c/shard-{000..005}.tar`, join(root, 'train-remote'));
    expect(local.filter((l) => l !== undefined)).toHaveLength(4);
    expect(remote).toEqual(local);
    expect(server.log.filter((r) => r.fault === 'cut').length).toBeGreaterThan(0);
  });

  it('train over HTTP, SIGKILLed past a checkpoint and resumed, logs the losses of an uninterrupted run', async () => {
    server.reset();
    const args = (out: string) =>
      tinyTrain(`tar:${base}/c/shard-{000..005}.tar`, out, '--batch', '4', '--steps', '8', '--checkpoint-every', '3', '--queue', '16');
    const straight = join(root, 'resume-straight');
    const whole = await cli(args(straight)).done;
    expect(whole.status, whole.stderr).toBe(0);

    // Each response dawdles and the first of each shard breaks, so the kill lands mid-run.
    server.plan = (_, n) => (n === 0 ? { kind: 'cut', after: 4000 } : { kind: 'stall', after: 2000, ms: 150 });
    const out = join(root, 'resume-killed');
    const first = cli(args(out));
    await killWhen(first, () => metricsOf(out).length >= 4);
    expect((await first.done).status).toBeNull();
    const resumed = await cli(['train', '--resume', '--out', out]).done;
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(metricsOf(out)).toEqual(metricsOf(straight).map((m) => expect.objectContaining({ step: m.step, loss: m.loss })));
  });

  it('--on-missing-shard skip records a missing shard and finishes; fail names the URL', async () => {
    server.reset();
    const data = `tar:${base}/c/shard-{000..006}.tar`; // shard-006 is not served
    const failed = await cli(exportArgs(data, join(root, 'missing-fail'))).done;
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain(`${base}/c/shard-006.tar: HTTP 404`);
    const out = join(root, 'missing-skip');
    const skipped = await cli([...exportArgs(data, out), '--on-missing-shard', 'skip']).done;
    expect(skipped.status, skipped.stderr).toBe(0);
    expect(JSON.parse(skipped.stdout)).toMatchObject({ rows: SHARDS * PER_SHARD });
    const log = jsonLines<SkipRecord>(join(out, 'skipped.jsonl'));
    expect(log).toEqual([
      { id: 'shard-006.tar', stage: 'shard', reason: `${base}/c/shard-006.tar: HTTP 404 Not Found; the shard is skipped` },
    ]);
  });

  it('refuses to resume an export whose parts were cut with a shard passed over that is now read', async () => {
    server.reset();
    const data = `tar:${base}/c/shard-{000..005}.tar`;
    const out = join(root, 'passed-then-read');
    const shard2 = server.objects.get('/c/shard-002.tar') as Buffer;
    server.objects.delete('/c/shard-002.tar'); // gone for the first run
    try {
      const first = await cli([...exportArgs(data, out), '--on-missing-shard', 'skip']).done;
      expect(first.status, first.stderr).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({ rows: (SHARDS - 1) * PER_SHARD });
      const parts = (JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest).parts;
      expect(parts.flatMap((p) => p.shardsPassed ?? [])).toEqual(['shard-002.tar']);
    } finally {
      server.objects.set('/c/shard-002.tar', shard2);
    }
    // Back: its samples would take the positions later parts hold.
    const again = await cli([...exportArgs(data, out), '--on-missing-shard', 'skip']).done;
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(
      /was written with shard\(s\) shard-002\.tar passed over, and now every shard was read; its positions moved/,
    );
  });

  it('a train whose shards cannot be reached fails naming the URL; a second one into its folder is told there is nothing to resume', async () => {
    const out = join(root, 'unreachable');
    const args = ['train', '--data', 'tar:http://127.0.0.1:9/x-{0..1}.tar', '--steps', '1', '--retries', '1', '--out', out];
    const first = await cli(args).done;
    expect(first.status).toBe(1);
    expect(first.stderr).toContain('http://127.0.0.1:9/x-0.tar: gave up after 2 failed attempts in a row at byte 0');
    expect(first.stderr).toContain('ECONNREFUSED');
    const second = await cli(args).done;
    expect(second.status).toBe(2);
    expect(second.stderr).toContain(
      `--out ${out} holds a run that stopped before its first checkpoint (skipped.jsonl): replace it with --overwrite, or give another --out`,
    );
  });

  it('refuses remote-shard flags that do not fit, before any work', async () => {
    const notTar = await cli(['export', '--data', 'scenes:32:10', '--out', join(root, 'x'), '--retries', '3']).done;
    expect(notTar.status).toBe(2);
    expect(notTar.stderr).toContain('--retries: only tar: shards are read remotely');
    const noCache = await cli(['train', '--data', `tar:${base}/c/shard-000.tar`, '--cache-size', '5', '--out', join(root, 'y')]).done;
    expect(noCache.status).toBe(2);
    expect(noCache.stderr).toContain('--cache-size: give --cache DIR too');
    const badPolicy = await cli([
      'precompute',
      '--data',
      `tar:${base}/c/shard-000.tar`,
      '--out',
      join(root, 'z'),
      '--on-missing-shard',
      'ignore',
    ]).done;
    expect(badPolicy.status).toBe(2);
    expect(badPolicy.stderr).toMatch(/--on-missing-shard/);
  });
});
