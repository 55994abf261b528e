/**
 * A folder of real photos for the pipeline benchmark: N JPEGs of about 500×375 (some
 * portrait), cut with seeded crops, flips and tone shifts from the photographs Debian's
 * `python3-skimage` ships. Built once per (N, seed) and reused.
 */
import sharp from 'sharp';
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyedRng } from '../core/index.js';

export const SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data';
const PHOTOS = [
  'astronaut.png',
  'chelsea.png',
  'coffee.png',
  'ihc.png',
  'motorcycle_left.png',
  'motorcycle_right.png',
  'hubble_deep_field.jpg',
  'retina.jpg',
  'rocket.jpg',
];

export async function photoCorpus(count = 600, seed = 0): Promise<string> {
  const dir = join(tmpdir(), `densestream-photos-${count}-${seed}`);
  if (existsSync(dir) && readdirSync(dir).length === count) return dir;
  const available = PHOTOS.filter((p) => existsSync(join(SKIMAGE_DATA, p)));
  if (available.length === 0) throw new Error(`no photos in ${SKIMAGE_DATA}: install Debian's python3-skimage, or pass --data dir:PATH`);
  const partial = `${dir}.partial`;
  mkdirSync(partial, { recursive: true });
  for (let i = 0; i < count; i++) {
    const rng = keyedRng(seed, 'corpus', i);
    const file = join(SKIMAGE_DATA, available[i % available.length] as string);
    const meta = await sharp(file).metadata();
    const [w, h] = [meta.width ?? 0, meta.height ?? 0];
    const portrait = rng.chance(0.25);
    const cw = Math.round(w * rng.uniform(0.6, 1));
    const ch = Math.min(h, Math.round(portrait ? (cw * 4) / 3 : (cw * 3) / 4));
    const left = rng.int(w - cw + 1);
    const top = rng.int(h - ch + 1);
    let img = sharp(file)
      .removeAlpha()
      .extract({ left, top, width: cw, height: ch })
      .resize(portrait ? 375 : 500, portrait ? 500 : 375, { fit: 'fill' })
      .modulate({ brightness: rng.uniform(0.8, 1.2), saturation: rng.uniform(0.7, 1.3) });
    if (rng.chance(0.5)) img = img.flop();
    await img.jpeg({ quality: 90 }).toFile(join(partial, `photo-${String(i).padStart(4, '0')}.jpg`));
  }
  renameSync(partial, dir);
  return dir;
}
