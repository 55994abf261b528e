import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { Pixels } from '../core/index.js';
import { keyedRng } from '../core/index.js';
import { renderScene } from '../datasets/scenes.js';
import { maskFromAttention } from '../operators/foreground-mask.js';
import { saliencyMap } from '../operators/saliency.js';
import { saliencyKernels } from '../operators/saliency-kernels.js';
import { SALIENCY_SOURCE_SHA256 } from '../operators/saliency-wasm.js';
import { referenceBoundary, referenceLab, referenceMask } from './helpers/saliency-reference.js';

const bytes = (a: Float32Array | Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

async function photo(name: string, grey = false): Promise<Pixels> {
  const image = sharp(new URL(`./fixtures/${name}`, import.meta.url).pathname);
  const { data, info } = await (grey ? image.greyscale() : image.removeAlpha()).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: info.channels === 1 ? 1 : 3 };
}

function scene(seed: number, index: number): Pixels {
  const { pixels } = renderScene(seed, index);
  if (!pixels) throw new Error('scenes render pixels');
  return pixels;
}

/** Noise of every byte value, so the Lab conversion sees all of the table and both branches of f. */
function noise(width: number, height: number, channels: 1 | 3, seed: number): Pixels {
  const rng = keyedRng(seed, 'saliency-noise');
  return { data: Uint8Array.from({ length: width * height * channels }, () => rng.int(256)), width, height, channels };
}

describe('saliency in WebAssembly (operators/saliency.c)', () => {
  it('was built from the saliency.c in the tree (npm run build:kernels after editing it)', () => {
    const source = readFileSync(new URL('../operators/saliency.c', import.meta.url));
    expect(createHash('sha256').update(source).digest('hex')).toBe(SALIENCY_SOURCE_SHA256);
  });

  it("takes cube roots exactly as V8's Math.cbrt does", () => {
    const rng = keyedRng(3, 'cbrt');
    const values = [0, -0, 1, 8, 0.008857, 1e-310, 5e-324, 1e300, Infinity, -Infinity, -27, NaN];
    for (let i = 0; i < 20_000; i++) values.push(0.008856 + rng.next() * 1.2, rng.next() * 10 ** (rng.int(40) - 20));
    const k = saliencyKernels();
    for (const v of values) expect(Object.is(k.cubeRoot(v), Math.cbrt(v)), `cbrt(${v})`).toBe(true);
  });

  const images: [string, () => Promise<Pixels>][] = [
    ['a 64-px scene', async () => scene(0, 7)],
    ['another scene', async () => scene(5, 1234)],
    ['a photo (area-averaged downscale)', () => photo('chelsea.jpg')],
    ['a grey photo', () => photo('coffee.jpg', true)],
    ['noise, odd sizes', async () => noise(37, 23, 3, 1)],
    ['a one-row image', async () => noise(50, 1, 3, 2)],
    ['an image larger than a band (copied in four)', async () => noise(1200, 1000, 3, 4)],
  ];

  it.each(images)('gives the JavaScript reference’s Lab maps, boundary maps and masks, bit for bit: %s', async (_, load) => {
    const pixels = await load();
    const k = saliencyKernels();
    for (const size of [64, 16]) {
      const scale = Math.min(1, size / Math.max(pixels.width, pixels.height));
      const [w, h] = [Math.max(1, Math.round(pixels.width * scale)), Math.max(1, Math.round(pixels.height * scale))];
      for (const sigma of [0, 1, 3]) expect(bytes(k.lab(pixels, w, h, sigma)).equals(bytes(referenceLab(pixels, w, h, sigma)))).toBe(true);
      for (const borderColours of [16, 3]) {
        const map = saliencyMap(pixels, { size, borderColours });
        const reference = referenceBoundary(pixels, { size, borderColours });
        expect([map.width, map.height]).toEqual([reference.width, reference.height]);
        expect(bytes(map.data).equals(bytes(reference.data))).toBe(true);
        for (const minArea of [0.01, 0.2])
          expect(bytes(maskFromAttention(map, minArea).data).equals(bytes(referenceMask(reference, minArea).data))).toBe(true);
      }
    }
  });

  it('masks an unusable map as all foreground, as before', () => {
    for (const data of [
      new Float32Array(64),
      new Float32Array(64).fill(0.5),
      Float32Array.from({ length: 64 }, (_, i) => (i === 3 ? NaN : i)),
    ]) {
      const mask = maskFromAttention({ data, width: 8, height: 8 });
      expect([...mask.data]).toEqual(new Array(64).fill(1));
      expect([...mask.data]).toEqual([...referenceMask({ data, width: 8, height: 8 }).data]);
    }
  });
});
