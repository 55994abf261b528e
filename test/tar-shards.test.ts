import sharp from 'sharp';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSamples } from '../datasets/source.js';
import { tarShardsSource } from '../datasets/tar-shards.js';
import type { Sample, SkipRecord } from '../core/index.js';
import { openSource } from '../pipelines/data-source.js';
import { tarOf } from '../bench/tar-of.js';

let pattern: string;
const all = async (opts: Parameters<typeof readSamples>[1] = {}, skips: SkipRecord[] = []) => {
  const out: Sample[] = [];
  for await (const s of readSamples(tarShardsSource(pattern, { shuffleBuffer: 8 }), opts, (r) => skips.push(r))) out.push(s);
  return out;
};

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'densestream-tar-'));
  const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#888' } })
    .jpeg()
    .toBuffer();
  for (let s = 0; s < 3; s++) {
    const entries: Array<[string, Buffer]> = [];
    for (let i = 0; i < 10; i++) {
      const key = `images/${s}${String(i).padStart(3, '0')}`;
      if (s === 1 && i === 4) {
        entries.push([`${key}.json`, Buffer.from('{"label": 3}')]);
        continue;
      } // no image
      entries.push([`${key}.jpg`, jpeg]);
      entries.push(i % 2 ? [`${key}.cls`, Buffer.from(`${i}\n`)] : [`${key}.json`, Buffer.from(JSON.stringify({ label: i }))]);
    }
    writeFileSync(join(dir, `shard-${String(s).padStart(3, '0')}.tar`), await tarOf(entries));
  }
  pattern = join(dir, 'shard-{000..002}.tar');
});

describe('tar:PATTERN (WebDataset shards)', () => {
  it('reads every sample grouped by key, labels from .cls or .json, and skips a sample without an image', async () => {
    const skips: SkipRecord[] = [];
    const samples = await all({ seed: 1 }, skips);
    expect(samples).toHaveLength(29);
    expect(new Set(samples.map((s) => s.id)).size).toBe(29);
    const s = samples.find((x) => x.id === 'shard-002.tar:images/2007')!;
    expect(s.label).toBe(7);
    expect(samples.find((x) => x.id === 'shard-000.tar:images/0004')!.label).toBe(4);
    expect(s.bytes!.length).toBeGreaterThan(100);
    expect(skips).toEqual([{ id: 'shard-001.tar:images/1004', stage: 'read', reason: 'no image among json' }]);
  });

  it('partitions ids exactly across --shard i/n', async () => {
    const parts = await Promise.all([0, 1, 2].map((index) => all({ seed: 1, shard: { index, count: 3 } })));
    const ids = parts.flat().map((s) => s.id);
    expect(ids).toHaveLength(29);
    expect(new Set(ids).size).toBe(29);
    expect(parts.every((p) => p.length > 0)).toBe(true);
  });

  it('shuffles by seed and epoch, reproducibly, and resumes with skip', async () => {
    const a = (await all({ seed: 1, epoch: 0 })).map((s) => s.id);
    expect((await all({ seed: 1, epoch: 0 })).map((s) => s.id)).toEqual(a);
    expect((await all({ seed: 1, epoch: 1 })).map((s) => s.id)).not.toEqual(a);
    expect((await all({ seed: 1, shuffle: false })).map((s) => s.id)).not.toEqual(a);
    expect((await all({ seed: 1, epoch: 0, skip: 10, limit: 5 })).map((s) => s.id)).toEqual(a.slice(10, 15));
  });

  it('is named on the command line as tar:PATTERN, and a bad pattern is refused', async () => {
    expect((await openSource(`tar:${pattern}`)).name).toContain('3 shards');
    await expect(openSource('tar:/nonexistent/shard-{0..3}.tar')).rejects.toThrow('no shard found');
    await expect(openSource('imagenet')).rejects.toThrow('--data: unknown source "imagenet"');
  });
});
