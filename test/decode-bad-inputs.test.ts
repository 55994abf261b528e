import sharp from 'sharp';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { tap } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { imageFolderSource } from '../datasets/image-folder.js';
import { readSamples } from '../datasets/source.js';
import { decode } from '../operators/decode.js';
import { fromSource } from '../operators/from-source.js';
import { SampleBudget } from '../operators/sample-budget.js';
import type { Sample, SkipRecord } from '../core/index.js';
import { collect } from './helpers/collect.js';

/** A PNG chunk with its CRC. */
function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'ascii'), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** A 100-byte PNG whose header declares 30 000 × 30 000 RGB: a decompression bomb. */
function pixelBomb(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(30_000, 0);
  ihdr.writeUInt32BE(30_000, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([
    signature,
    chunk('IHDR', ihdr),
    chunk('IDAT', new Uint8Array([0x78, 0x9c, 3, 0, 0, 0, 0, 1])),
    chunk('IEND', new Uint8Array()),
  ]);
}

const colour = { r: 48, g: 128, b: 192 };
const solid = (width: number, height: number, channels: 3 | 4 = 3) =>
  sharp({ create: { width, height, channels, background: { ...colour, alpha: 0.5 } } });

let dir: string;
let decoded: Map<string, Sample>;
let skipped: Map<string, SkipRecord>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'densestream-bad-'));
  const photo = await solid(64, 48).jpeg().toBuffer();
  const frames = await Promise.all(
    [255, 0, 128].map((r) =>
      sharp({ create: { width: 20, height: 10, channels: 3, background: { r, g: 0, b: 0 } } })
        .png()
        .toBuffer(),
    ),
  );
  const files: Record<string, Buffer> = {
    'ok.jpg': photo,
    'truncated.jpg': photo.subarray(0, Math.floor(photo.length / 2)),
    'empty.jpg': Buffer.alloc(0),
    'text.jpg': Buffer.from('this is not an image, just text named .jpg\n'),
    'bomb.png': pixelBomb(),
    'deep.png': await solid(16, 8).toColourspace('rgb16').png().toBuffer(),
    'cmyk.jpg': await solid(16, 8).toColourspace('cmyk').jpeg().toBuffer(),
    'grey.png': await solid(16, 8).greyscale().png().toBuffer(),
    'alpha.png': await solid(16, 8, 4).png().toBuffer(),
    'rotated.jpg': await solid(30, 10).jpeg().withMetadata({ orientation: 6 }).toBuffer(),
    'animated.gif': await sharp(frames, { join: { animated: true } })
      .gif()
      .toBuffer(),
  };
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);

  const skips: SkipRecord[] = [];
  const source = await imageFolderSource(dir);
  const budget = new SampleBudget(4);
  const samples = await collect(
    fromSource(readSamples(source, { shuffle: false }), budget).pipe(
      decode({
        onSkip: (r) => {
          skips.push(r);
          budget.release();
        },
      }),
      tap(() => budget.release()), // the consumer: done with each sample as it arrives
    ),
  );
  decoded = new Map(samples.map((s) => [s.id, s]));
  skipped = new Map(skips.map((r) => [r.id, r]));
});

describe('decode on real bad and unusual files', () => {
  it('never errors the stream: every file is either decoded or skipped with a reason', () => {
    expect(decoded.size + skipped.size).toBe(11);
    for (const r of skipped.values()) expect(r).toMatchObject({ stage: 'decode', reason: expect.any(String) });
  });

  it.each([
    ['truncated.jpg', /^truncated JPEG: \d+ bytes and no end-of-image marker/],
    ['empty.jpg', /empty file/],
    ['text.jpg', /unsupported image format/i],
    ['bomb.png', /pixel limit/i],
  ])('skips %s and says why', (name, reason) => {
    expect(decoded.has(name)).toBe(false);
    expect(skipped.get(name)?.reason).toMatch(reason);
  });

  it.each(['ok.jpg', 'deep.png', 'cmyk.jpg', 'grey.png', 'alpha.png', 'animated.gif', 'rotated.jpg'])('turns %s into 8-bit RGB', (name) => {
    const p = decoded.get(name)?.pixels;
    expect(p, `${name} was skipped: ${skipped.get(name)?.reason}`).toBeDefined();
    expect(p!.channels).toBe(3);
    expect(p!.data.length).toBe(p!.width * p!.height * 3);
    expect(decoded.get(name)?.bytes).toBeUndefined();
  });

  it('keeps the colour of 16-bit, CMYK and alpha inputs (within JPEG/ICC tolerance)', () => {
    for (const name of ['deep.png', 'alpha.png', 'cmyk.jpg']) {
      const d = decoded.get(name)!.pixels!.data;
      const tol = name === 'cmyk.jpg' ? 24 : 2;
      expect(Math.abs((d[0] as number) - colour.r), name).toBeLessThanOrEqual(tol);
      expect(Math.abs((d[1] as number) - colour.g), name).toBeLessThanOrEqual(tol);
      expect(Math.abs((d[2] as number) - colour.b), name).toBeLessThanOrEqual(tol);
    }
  });

  it('gives grey inputs three equal channels', () => {
    const d = decoded.get('grey.png')!.pixels!.data;
    expect(d[0]).toBe(d[1]);
    expect(d[1]).toBe(d[2]);
  });

  it('applies EXIF orientation 6 (90° clockwise): 30×10 stored, 10×30 decoded', () => {
    const p = decoded.get('rotated.jpg')!.pixels!;
    expect([p.width, p.height]).toEqual([10, 30]);
  });

  it('takes the first frame of an animated GIF', () => {
    const p = decoded.get('animated.gif')!.pixels!;
    expect([p.width, p.height]).toEqual([20, 10]);
    expect(p.data[0]).toBeGreaterThan(200); // the red first frame, not the black second
  });

  it('shrinks on load to the requested shorter side, keeping the aspect ratio', async () => {
    const source = await imageFolderSource(dir);
    const samples = await collect(fromSource(readSamples(source, { shuffle: false }), new SampleBudget(100)).pipe(decode({ minSide: 24 })));
    const ok = samples.find((s) => s.id === 'ok.jpg')!.pixels!;
    expect([ok.width, ok.height]).toEqual([32, 24]);
  });
});
