/**
 * `tar:` over HTTP and S3 against real loopback servers: a fault-injecting HTTP server (which
 * also speaks path-style S3) and s3rver. Each fault must leave every sample read exactly once,
 * or a recorded skip.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import sharp from 'sharp';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sample, SkipRecord } from '../core/index.js';
import { parseRetryAfter } from '../datasets/range-fetch.js';
import { backoffMs, DEFAULT_RETRY_POLICY } from '../datasets/shard-bytes.js';
import { expandShardPattern } from '../datasets/shard-list.js';
import { readSamples, type EpochOptions } from '../datasets/source.js';
import { shardsOfHost, tarShardsSource, type TarOptions } from '../datasets/tar-shards.js';
import { FaultServer } from '../bench/fault-server.js';
import { tarOf } from '../bench/tar-of.js';

const SHARDS = 4;
const PER_SHARD = 12;
const FAST = { retry: { baseDelayMs: 5, maxDelayMs: 20, readTimeoutMs: 2000 } } satisfies TarOptions;
let dir: string;
let server: FaultServer;
let base: string;
const shardPaths = Array.from({ length: SHARDS }, (_, s) => `/data/shard-${String(s).padStart(3, '0')}.tar`);

interface Read {
  ids: string[];
  digests: string[];
  skips: SkipRecord[];
}

async function read(pattern: string, options: TarOptions = {}, epoch: EpochOptions = { seed: 3 }): Promise<Read> {
  const skips: SkipRecord[] = [];
  const samples: Sample[] = [];
  for await (const s of readSamples(tarShardsSource(pattern, { shuffleBuffer: 5, ...options }), epoch, (r) => skips.push(r)))
    samples.push(s);
  return {
    ids: samples.map((s) => s.id),
    digests: samples.map((s) => createHash('sha1').update(s.bytes!).digest('hex')),
    skips,
  };
}

const httpPattern = () => `${base}/data/shard-{000..${String(SHARDS - 1).padStart(3, '0')}}.tar`;
let local: Read;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'densestream-remote-'));
  server = new FaultServer();
  base = await server.start();
  for (let s = 0; s < SHARDS; s++) {
    const entries: Array<[string, Buffer]> = [];
    for (let i = 0; i < PER_SHARD; i++) {
      const noise = Buffer.from(Array.from({ length: 24 * 24 * 3 }, (_, k) => (k * 7919 + i * 104729 + s * 31) % 251));
      const jpeg = await sharp(noise, { raw: { width: 24, height: 24, channels: 3 } })
        .jpeg()
        .toBuffer();
      const key = `img/${s}-${String(i).padStart(3, '0')}`;
      entries.push([`${key}.jpg`, jpeg], [`${key}.cls`, Buffer.from(String(i % 5))]);
    }
    const bytes = await tarOf(entries);
    writeFileSync(join(dir, `shard-${String(s).padStart(3, '0')}.tar`), bytes);
    server.objects.set(shardPaths[s] as string, bytes);
  }
  local = await read(join(dir, `shard-{000..${String(SHARDS - 1).padStart(3, '0')}}.tar`));
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => server.reset());

describe('tar: over HTTP', () => {
  it('reads the same samples, in the same order, as the same shards on local disk', async () => {
    expect(local.ids).toHaveLength(SHARDS * PER_SHARD);
    const remote = await read(httpPattern(), FAST);
    expect(remote.ids).toEqual(local.ids);
    expect(remote.digests).toEqual(local.digests);
    expect(remote.skips).toEqual([]);
  });

  it('resumes a connection cut mid-body with a Range request from the byte where it stopped', async () => {
    const sizes = new Map(shardPaths.map((p) => [p, (server.objects.get(p) as Buffer).length]));
    // Each shard's first two responses break at a pseudo-random byte; the third is whole.
    server.plan = (path, n) =>
      n < 2 ? { kind: 'cut', after: ((n + 1) * 7717 + path.length * 131) % ((sizes.get(path) ?? 2) >> 1) } : undefined;
    const remote = await read(httpPattern(), FAST);
    expect(remote.ids).toEqual(local.ids);
    expect(remote.digests).toEqual(local.digests);
    for (const path of shardPaths) {
      const reqs = server.requests(path);
      expect(reqs.map((r) => r.fault)).toEqual(['cut', 'cut', undefined]);
      // The first read starts at 0; each retry starts where the one before stopped, never at 0 again.
      expect(reqs[0]!.start).toBe(0);
      expect(reqs[1]!.start).toBeGreaterThan(0);
      expect(reqs[2]!.start).toBeGreaterThan(reqs[1]!.start);
    }
    const retries = remote.skips.filter((r) => r.stage === 'fetch');
    expect(retries).toHaveLength(2 * SHARDS);
    expect(remote.skips.filter((r) => r.stage !== 'fetch')).toEqual([]);
    expect(retries[0]!.reason).toMatch(/^retry 1\/6 from byte \d+ of \d+ in \d+ ms: /);
  });

  it('retries 500, 503 and 429, honouring Retry-After, and records each retry', async () => {
    const codes = [500, 503, 429];
    server.plan = (path, n) =>
      path === shardPaths[1] && n < 3 ? { kind: 'status', status: codes[n]!, retryAfter: n === 1 ? '1' : undefined } : undefined;
    const t0 = Date.now();
    const remote = await read(httpPattern(), FAST);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000); // the 503's Retry-After: 1
    expect(remote.ids).toEqual(local.ids);
    const reasons = remote.skips.map((r) => r.reason);
    expect(reasons).toHaveLength(3);
    expect(reasons[0]).toMatch(/HTTP 500/);
    expect(reasons[1]).toMatch(/in 1000 ms \(Retry-After\): .*HTTP 503/);
    expect(reasons[2]).toMatch(/HTTP 429/);
    expect(remote.skips.every((r) => r.id === 'shard-001.tar' && r.stage === 'fetch')).toBe(true);
  });

  it('cuts a read that stalls past the per-read timeout and resumes it', async () => {
    server.plan = (path, n) => (path === shardPaths[2] && n === 0 ? { kind: 'stall', after: 3000, ms: 60_000 } : undefined);
    const remote = await read(httpPattern(), { retry: { ...FAST.retry, readTimeoutMs: 300 } });
    expect(remote.ids).toEqual(local.ids);
    expect(remote.skips).toHaveLength(1);
    expect(remote.skips[0]!.reason).toMatch(/from byte 3000 of \d+ .*no data for 0.3 s/);
    expect(server.requests(shardPaths[2]!).map((r) => r.start)).toEqual([0, 3000]);
  });

  it('does not retry a 404 or 403: --on-missing-shard fail names the URL, skip records the shard and goes on', async () => {
    server.plan = (path) => (path === shardPaths[3] ? { kind: 'status', status: 403 } : undefined);
    await expect(read(httpPattern(), FAST)).rejects.toThrow(`${base}${shardPaths[3]}: HTTP 403`);
    expect(server.requests(shardPaths[3]!)).toHaveLength(1);

    server.plan = () => undefined;
    const missing = `${base}/data/shard-{000..004}.tar`; // shard-004 does not exist
    await expect(read(missing, FAST)).rejects.toThrow(/shard-004\.tar: HTTP 404.*--on-missing-shard skip/);
    const skipped = await read(missing, { ...FAST, onMissingShard: 'skip' });
    expect(skipped.ids.sort()).toEqual([...local.ids].sort()); // five shards shuffle in another order
    expect(skipped.skips).toEqual([
      { id: 'shard-004.tar', stage: 'shard', reason: `${base}/data/shard-004.tar: HTTP 404 Not Found; the shard is skipped` },
    ]);
    expect(server.requests('/data/shard-004.tar')).toHaveLength(2); // once per run, never retried
  });

  it('gives a shard up after the retries, or skips it, recorded', async () => {
    server.plan = (path) => (path === shardPaths[0] ? { kind: 'status', status: 503 } : undefined);
    await expect(read(httpPattern(), { retry: { ...FAST.retry, retries: 2 } })).rejects.toThrow(
      /gave up after 3 failed attempts in a row at byte 0/,
    );
    expect(server.requests(shardPaths[0]!)).toHaveLength(3);
    const skipped = await read(httpPattern(), { retry: { ...FAST.retry, retries: 2 }, onMissingShard: 'skip' });
    expect(skipped.ids.sort()).toEqual(local.ids.filter((id) => !id.startsWith('shard-000.tar')).sort());
    expect(skipped.skips.map((r) => r.stage)).toEqual(['fetch', 'fetch', 'shard']);
  });

  it('lets go of every transfer and backoff as soon as its reader stops', async () => {
    // The shard opened ahead answers 503 with Retry-After: 3; the reader wants one sample.
    server.plan = (path) => (path === shardPaths[1] ? { kind: 'status', status: 503, retryAfter: '3' } : undefined);
    const t0 = Date.now();
    const one = await read(`${base}/data/shard-{000..001}.tar`, FAST, { seed: 3, shuffle: false, limit: 1 });
    expect(one.ids).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(2000);
    const asked = server.requests(shardPaths[1]!).length;
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect(server.requests(shardPaths[1]!).length).toBe(asked); // no retry after the reader left
  });

  it('streams on uncached when the cache folder cannot be made', async () => {
    const blocker = join(dir, 'not-a-folder');
    writeFileSync(blocker, 'a file where the cache folder would go');
    const remote = await read(httpPattern(), { ...FAST, cache: { dir: join(blocker, 'cache'), maxBytes: 1e7 } });
    expect(remote.ids).toEqual(local.ids);
    expect(remote.skips).toEqual([]);
  });

  it('keeps the samples of a truncated shard up to the break and records the loss', async () => {
    const whole = server.objects.get(shardPaths[1]!) as Buffer;
    server.objects.set(shardPaths[1]!, whole.subarray(0, Math.floor(whole.length * 0.6)));
    try {
      const remote = await read(httpPattern(), FAST);
      const lost = local.ids.filter((id) => !remote.ids.includes(id));
      expect(lost.length).toBeGreaterThan(0);
      expect(lost.every((id) => id.startsWith('shard-001.tar'))).toBe(true);
      expect(new Set(remote.ids).size).toBe(remote.ids.length);
      expect(remote.skips).toHaveLength(1);
      expect(remote.skips[0]).toMatchObject({ id: 'shard-001.tar', stage: 'shard' });
      expect(remote.skips[0]!.reason).toMatch(/damaged or truncated archive/);
    } finally {
      server.objects.set(shardPaths[1]!, whole);
    }
  });

  it('refuses to splice a shard that changed between two reads of it', async () => {
    const whole = server.objects.get(shardPaths[0]!) as Buffer;
    server.plan = (path, n) => {
      if (path !== shardPaths[0] || n !== 0) return undefined;
      server.objects.set(path, Buffer.concat([whole, Buffer.alloc(512)])); // replaced after the first response began
      return { kind: 'cut', after: 2000 };
    };
    try {
      await expect(read(httpPattern(), FAST)).rejects.toThrow(/changed while it was read/);
    } finally {
      server.objects.set(shardPaths[0]!, whole);
    }
  });

  it('splits remote shards across hosts by whole shards, disjoint and covering', async () => {
    const parts = await Promise.all([0, 1, 2].map((index) => read(httpPattern(), FAST, { seed: 3, shard: { index, count: 3 } })));
    expect(parts.flatMap((p) => p.ids).sort()).toEqual([...local.ids].sort());
    // With 4 shards over 3 hosts each host fetched only its own shards.
    const fetched = new Set(server.log.map((r) => r.path));
    expect(fetched.size).toBe(SHARDS);
    expect(server.log).toHaveLength(SHARDS);
    const plan = shardsOfHost(expandShardPattern(httpPattern()), { index: 0, count: 3 });
    expect(plan.shards.map((s) => s.name)).toEqual(['shard-000.tar', 'shard-003.tar']);
  });

  it('reads a shard list from a file, and gives a mistyped URL a clear error', async () => {
    const list = join(dir, 'shards.txt');
    writeFileSync(
      list,
      `# the corpus\n${base}/data/shard-{000..001}.tar\n\n${base}/data/shard-002.tar\n${base}/data/shard-003.tar # last\n`,
    );
    const remote = await read(`@${list}`, FAST);
    expect(remote.ids).toEqual(local.ids);
    expect(() => expandShardPattern('@/nonexistent/list.txt')).toThrow(/cannot read the shard list \(ENOENT\)/);
    expect(() => expandShardPattern('s3://bucket-only')).toThrow(/expected s3:\/\/BUCKET\/KEY/);
  });

  it('keeps shards in a verified on-disk cache: a second epoch reads none over the network', async () => {
    const cacheDir = join(dir, 'cache');
    const cache = { dir: cacheDir, maxBytes: 10 * 1024 * 1024 };
    server.plan = (path, n) => (n === 0 ? { kind: 'cut', after: 1000 } : undefined); // cached only when whole
    const first = await read(httpPattern(), { ...FAST, cache });
    expect(first.ids).toEqual(local.ids);
    const files = readdirSync(cacheDir);
    expect(files.filter((f) => f.endsWith('.tar'))).toHaveLength(SHARDS);
    expect(files.filter((f) => f.endsWith('.partial'))).toEqual([]);
    server.log.length = 0;
    const second = await read(httpPattern(), { ...FAST, cache });
    expect(second.ids).toEqual(local.ids);
    expect(second.digests).toEqual(local.digests);
    expect(server.log).toHaveLength(0);

    // A damaged entry (one flipped byte) fails its checksum and is read from the source again.
    const entry = join(
      cacheDir,
      files.find((f) => f.endsWith('.tar'))!,
    );
    const bytes = readFileSync(entry);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(entry, bytes);
    const third = await read(httpPattern(), { ...FAST, cache });
    expect(third.digests).toEqual(local.digests);
    expect(server.log).toHaveLength(1);
  });

  it('evicts the least recently used shards to stay within --cache-size', async () => {
    const cacheDir = join(dir, 'small-cache');
    const shardSize = (server.objects.get(shardPaths[0]!) as Buffer).length;
    await read(httpPattern(), { ...FAST, cache: { dir: cacheDir, maxBytes: Math.floor(shardSize * 2.5) } });
    expect(readdirSync(cacheDir).filter((f) => f.endsWith('.tar')).length).toBe(2);
  });
});

describe('tar: over S3', () => {
  let s3: S3rver;
  let endpoint: string;

  beforeAll(async () => {
    s3 = new S3rver({
      port: 0,
      address: '127.0.0.1',
      directory: join(dir, 's3rver'),
      silent: true,
      configureBuckets: [{ name: 'corpus', configs: [] }],
    });
    const { port } = await s3.run();
    endpoint = `http://127.0.0.1:${port}`;
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
    const client = new S3Client({
      endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      requestChecksumCalculation: 'WHEN_REQUIRED', // s3rver predates the SDK's default checksums
    });
    for (const path of shardPaths) {
      await client.send(new PutObjectCommand({ Bucket: 'corpus', Key: `train${path}`, Body: server.objects.get(path) as Buffer }));
    }
  });

  afterAll(async () => {
    await s3.close();
  });

  it('reads s3://bucket/prefix/shard-{…}.tar through an endpoint override, as from disk', async () => {
    const remote = await read('s3://corpus/train/data/shard-{000..003}.tar', { ...FAST, s3: { endpoint } });
    expect(remote.ids).toEqual(local.ids);
    expect(remote.digests).toEqual(local.digests);
    const missing = await read('s3://corpus/train/data/shard-{000..004}.tar', { ...FAST, s3: { endpoint }, onMissingShard: 'skip' });
    expect(missing.ids.sort()).toEqual([...local.ids].sort());
    expect(missing.skips).toEqual([
      { id: 'shard-004.tar', stage: 'shard', reason: 's3://corpus/train/data/shard-004.tar: HTTP 404 NoSuchKey; the shard is skipped' },
    ]);
  });

  it('resumes an S3 read cut mid-body and retries SlowDown (the fault server speaking path-style S3)', async () => {
    for (const path of shardPaths) server.objects.set(`/corpus${path}`, server.objects.get(path) as Buffer);
    server.plan = (path, n) =>
      n === 0 ? { kind: 'cut', after: 4000 } : n === 1 && path.endsWith('1.tar') ? { kind: 'status', status: 503 } : undefined;
    const remote = await read('s3://corpus/data/shard-{000..003}.tar', { ...FAST, s3: { endpoint: base } });
    expect(remote.ids).toEqual(local.ids);
    expect(remote.digests).toEqual(local.digests);
    expect(server.requests('/corpus/data/shard-001.tar').map((r) => [r.start, r.status])).toEqual([
      [0, 200],
      [4000, 503],
      [4000, 206],
    ]);
    expect(remote.skips.filter((r) => r.stage === 'fetch')).toHaveLength(SHARDS + 1);
  });
});

describe('retry arithmetic', () => {
  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(5000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it('backs off exponentially with full jitter, capped', () => {
    const policy = DEFAULT_RETRY_POLICY;
    expect([1, 2, 3, 4].map((n) => backoffMs(n, policy, () => 1))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffMs(20, policy, () => 1)).toBe(30_000);
    expect(backoffMs(3, policy, () => 0)).toBe(0);
  });
});

describe('memory on a long remote stream', () => {
  /** Peak memory (heap and array buffers, after GC) of a child process reading 4 shards of `perShard` 100-KB samples. */
  async function peakReading(server: FaultServer, url: string, perShard: number): Promise<{ n: number; peak: number }> {
    for (let s = 0; s < 4; s++) {
      const entries: Array<[string, Buffer]> = [];
      for (let i = 0; i < perShard; i++) {
        const bytes = createHash('sha512').update(`${s}/${i}`).digest();
        const blob = Buffer.alloc(100_000); // incompressible enough: nothing on the way shrinks it
        for (let k = 0; k < blob.length; k += bytes.length) bytes.copy(blob, k, 0, Math.min(bytes.length, blob.length - k));
        blob.writeUInt32LE(s * 1000 + i, 0);
        entries.push([`b/${s}-${i}.jpg`, blob]);
      }
      const file = join(dir, `big-${perShard}-${s}.tar`);
      writeFileSync(file, await tarOf(entries));
      server.objects.set(`/big-${perShard}-${s}.tar`, { file });
    }
    // A child process with --expose-gc reads the stream and reports its peak, so that garbage
    // not yet collected and this process's own buffers do not count.
    const script = `
      const { tarShardsSource } = await import(${JSON.stringify(new URL('../dist/datasets/tar-shards.js', import.meta.url).href)});
      const source = tarShardsSource(${JSON.stringify(`${url}/big-${perShard}-{0..3}.tar`)}, { shuffleBuffer: 10 });
      gc();
      const base = process.memoryUsage();
      let peak = 0, n = 0;
      for await (const s of source.samples({ seed: 1 })) {
        if (++n % 10 === 0) { gc(); const m = process.memoryUsage(); peak = Math.max(peak, m.arrayBuffers + m.heapUsed - base.arrayBuffers - base.heapUsed); }
      }
      console.log(JSON.stringify({ n, peak }));`;
    const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    await new Promise((resolve) => child.on('exit', resolve));
    return JSON.parse(stdout) as { n: number; peak: number };
  }

  it('stays bounded by the shuffle buffer and the shards in flight, not by shard size or count', async () => {
    const big = new FaultServer();
    const url = await big.start();
    try {
      // Against a budget of 10 samples (1 MB): 4 shards of 10 MB, then of 30 MB (a stream 120× the budget).
      const small = await peakReading(big, url, 100);
      const large = await peakReading(big, url, 300);
      expect([small.n, large.n]).toEqual([400, 1200]);
      // Measured: about 9 MB for both: the 1-MB buffer, the parser's and sockets' buffers of two
      // shards in flight, and what reading first brings into the heap (undici). Three times the
      // bytes per shard must not move it.
      expect(large.peak).toBeLessThan(small.peak * 1.5);
      expect(large.peak).toBeLessThan(16_000_000);
    } finally {
      await big.close();
    }
  }, 120_000);
});
