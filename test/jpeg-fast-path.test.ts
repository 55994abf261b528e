/**
 * The fast JPEG path of `decodeImage` (`@napi-rs/image` for plain JPEGs, operators/decode.ts) and
 * the header it is chosen by (operators/jpeg-header.ts): real photos decode as sharp decodes
 * them within a JPEG decoder's rounding, and every file the fast decoder would get wrong —
 * rotated, with a colour profile, CMYK, truncated, to be shrunk — is sharp's, pixel for pixel.
 */
import sharp from 'sharp';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decode, decodeImage } from '../operators/decode.js';
import { jpegHeader } from '../operators/jpeg-header.js';
import type { Pixels } from '../core/index.js';

const photos = ['chelsea.jpg', 'coffee.jpg'].map((name) => ({ name, bytes: readFileSync(new URL(`./fixtures/${name}`, import.meta.url)) }));
const cat = photos[0]!.bytes;

function differences(a: Pixels, b: Pixels): { mean: number; max: number } {
  expect([a.width, a.height, a.channels]).toEqual([b.width, b.height, b.channels]);
  let [sum, max] = [0, 0];
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs((a.data[i] as number) - (b.data[i] as number));
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.data.length, max };
}

describe('jpegHeader', () => {
  it('reads the size, components and frame of real photos, as sharp reports them', async () => {
    for (const { name, bytes } of photos) {
      const meta = await sharp(bytes).metadata();
      expect(jpegHeader(bytes), name).toMatchObject({
        width: meta.width,
        height: meta.height,
        components: 3,
        precision: 8,
        frame: 0xc0,
        orientation: 1,
        icc: false,
        adobe: false,
        complete: true,
      });
    }
  });

  it('finds EXIF orientation (both byte orders), ICC profiles, Adobe CMYK, progressive frames and truncation', async () => {
    expect(jpegHeader(await sharp(cat).jpeg().withMetadata({ orientation: 6 }).toBuffer())?.orientation).toBe(6);
    expect(jpegHeader(await sharp(cat).jpeg().withIccProfile('p3').toBuffer())?.icc).toBe(true);
    expect(jpegHeader(await sharp(cat).toColourspace('cmyk').jpeg().toBuffer())).toMatchObject({ components: 4, adobe: true });
    expect(jpegHeader(await sharp(cat).jpeg({ progressive: true }).toBuffer())?.frame).toBe(0xc2);
    expect(jpegHeader(cat.subarray(0, cat.length >> 1))?.complete).toBe(false);
    // A big-endian ("MM") EXIF block with orientation 3, written by hand.
    const exif = Buffer.from([
      ...Buffer.from('Exif\0\0', 'latin1'),
      ...[0x4d, 0x4d, 0, 42, 0, 0, 0, 8], // MM, 42, IFD0 at 8
      ...[0, 1], // one entry
      ...[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 3, 0, 0], // orientation, SHORT, count 1, value 3
      ...[0, 0, 0, 0],
    ]);
    const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, (exif.length + 2) >> 8, (exif.length + 2) & 0xff]), exif]);
    expect(jpegHeader(Buffer.concat([cat.subarray(0, 2), app1, cat.subarray(2)]))?.orientation).toBe(3);
  });

  it('is undefined for what is not a JPEG, or whose markers do not parse', async () => {
    expect(jpegHeader(new Uint8Array())).toBeUndefined();
    expect(jpegHeader(await sharp(cat).png().toBuffer())).toBeUndefined();
    expect(jpegHeader(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff]))).toBeUndefined(); // a length past the end
    expect(jpegHeader(Buffer.from([0xff, 0xd8, 0x00, 0x00, 0x00, 0x00]))).toBeUndefined(); // no marker
  });
});

describe('decodeImage: the fast path for plain JPEGs', () => {
  it('decodes real photos, baseline and progressive, as sharp does within a JPEG decoder’s rounding', async () => {
    for (const { name, bytes } of photos) {
      for (const file of [bytes, await sharp(bytes).jpeg({ progressive: true, quality: 90 }).toBuffer()]) {
        const d = differences(await decodeImage(file), await decodeImage(file, { decoder: 'sharp' }));
        // measured: mean 0.2–0.3 levels, at most 6 (different IDCT and chroma upsampling)
        expect(d.mean, name).toBeLessThan(0.6);
        expect(d.max, name).toBeLessThanOrEqual(10);
        expect(d.mean, `${name}: the fast decoder did not run`).toBeGreaterThan(0);
      }
    }
  });

  it('gives a grey JPEG three equal channels, as sharp does', async () => {
    const grey = await sharp(cat).greyscale().jpeg().toBuffer();
    const p = await decodeImage(grey);
    for (let i = 0; i < p.data.length; i += 3)
      if (p.data[i] !== p.data[i + 1] || p.data[i] !== p.data[i + 2]) throw new Error(`pixel ${i / 3} is not grey`);
    expect(differences(p, await decodeImage(grey, { decoder: 'sharp' })).mean).toBeLessThan(0.6);
  });

  it.each([
    ['rotated (EXIF 6)', () => sharp(cat).jpeg().withMetadata({ orientation: 6 }).toBuffer()],
    ['with a P3 profile', () => sharp(cat).jpeg().withIccProfile('p3').toBuffer()],
    ['CMYK', () => sharp(cat).toColourspace('cmyk').jpeg().toBuffer()],
  ])('leaves a JPEG %s to sharp: the same pixels', async (_, make) => {
    const bytes = await make();
    const [auto, bySharp] = [await decodeImage(bytes), await decodeImage(bytes, { decoder: 'sharp' })];
    expect(differences(auto, bySharp)).toEqual({ mean: 0, max: 0 });
  });

  it('leaves a photo to be shrunk on load to sharp, and takes it when it is no larger than asked', async () => {
    const shrunk = await decodeImage(cat, { minSide: 150 });
    expect([shrunk.width, shrunk.height]).toEqual([226, 150]);
    expect(differences(shrunk, await decodeImage(cat, { minSide: 150, decoder: 'sharp' }))).toEqual({ mean: 0, max: 0 });
    const whole = await decodeImage(cat, { minSide: 300 });
    expect([whole.width, whole.height]).toEqual([451, 300]);
  });

  it('refuses an unknown decoder before it reads a file', async () => {
    const bad = { decoder: 'fast' } as unknown as Parameters<typeof decode>[0];
    expect(() => decode(bad)).toThrow('decode decoder: expected auto|sharp, got "fast"');
    await expect(decodeImage(cat, bad)).rejects.toThrow('expected auto|sharp');
  });

  it('refuses a truncated JPEG (the fast decoder would fill it in) and a pixel bomb, with sharp’s reasons', async () => {
    await expect(decodeImage(cat.subarray(0, cat.length >> 1))).rejects.toThrow(/truncat|premature|end of/i);
    await expect(decodeImage(cat, { limitInputPixels: 1000 })).rejects.toThrow(/pixel limit/i);
  });
});
