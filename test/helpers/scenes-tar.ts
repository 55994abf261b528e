import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { scenesSource } from '../../datasets/scenes.js';
import { tarOf } from '../../bench/tar-of.js';

/**
 * `shards` WebDataset tars of `perShard` synthetic scenes each (`size` px PNGs with their label
 * in `.cls`), as a stream source to train from. Returns the `tar:` pattern and each id's label
 * (ids as the tar source names them: `shard-000.tar:img/0003`).
 */
export async function writeScenesTar(
  shards: number,
  perShard: number,
  size: number,
): Promise<{ pattern: string; labels: Map<string, number> }> {
  const dir = mkdtempSync(join(tmpdir(), 'densestream-scenes-tar-'));
  const scenes = scenesSource({ size, count: shards * perShard, seed: 3 });
  const labels = new Map<string, number>();
  for (let s = 0; s < shards; s++) {
    const entries: Array<[string, Buffer]> = [];
    const name = `shard-${String(s).padStart(3, '0')}.tar`;
    for (let i = 0; i < perShard; i++) {
      const sample = await scenes.read(s * perShard + i);
      const px = sample.pixels!;
      const png = await sharp(Buffer.from(px.data), { raw: { width: px.width, height: px.height, channels: px.channels } })
        .png()
        .toBuffer();
      const key = `img/${String(i).padStart(4, '0')}`;
      entries.push([`${key}.png`, png], [`${key}.cls`, Buffer.from(`${sample.label ?? 0}\n`)]);
      labels.set(`${name}:${key}`, sample.label ?? 0);
    }
    writeFileSync(join(dir, name), await tarOf(entries));
  }
  return { pattern: join(dir, `shard-{000..${String(shards - 1).padStart(3, '0')}}.tar`), labels };
}
