import { Transformer } from '@napi-rs/image';
import sharp, { type OutputInfo } from 'sharp';
import type { OperatorFunction } from 'rxjs';
import type { Pixels, Sample, SkipRecord } from '../core/index.js';
import { endsAsJpeg, jpegHeader, startsAsJpeg } from './jpeg-header.js';
import { orderedMergeMap } from './ordered-merge-map.js';

/** The start-of-frame markers the fast decoder takes: baseline, extended and progressive Huffman JPEGs. */
const FAST_FRAMES = new Set([0xc0, 0xc1, 0xc2]);

export interface DecodeOptions {
  /**
   * Shrink on load so the shorter side is at least this many pixels (default: no shrink).
   * Set it from the largest view and smallest crop scale: `ceil(viewSize / sqrt(minScale))`.
   */
  minSide?: number;
  /** Refuse images with more pixels than this (default 8192² ≈ 67 M): pixel bombs. */
  limitInputPixels?: number;
  /** Decodes in flight (default 4: sharp decodes on its own thread pool). */
  concurrency?: number;
  /** Called with each refused sample; the stream goes on without it. */
  onSkip?: (record: SkipRecord) => void;
  /**
   * `auto` (default): plain JPEGs — baseline or progressive, grey or YCbCr, no ICC profile,
   * upright, whole, and not to be shrunk — by `@napi-rs/image`, which took 2.4 ms of CPU for a
   * 500×375 photo where sharp took 3.8–4.5 (its pixels differ from libjpeg's by a mean of 0.2
   * levels, at most 6); everything else by sharp. `sharp`: every file by sharp.
   */
  decoder?: 'auto' | 'sharp';
}

/** Expands grey pixels (Fashion-MNIST, raw sources) to RGB. */
export function toRgb(p: Pixels): Pixels {
  if (p.channels === 3) return p;
  const data = new Uint8Array(p.width * p.height * 3);
  for (let i = 0, j = 0; i < p.data.length; i++, j += 3) {
    const v = p.data[i] as number;
    data[j] = v;
    data[j + 1] = v;
    data[j + 2] = v;
  }
  return { data, width: p.width, height: p.height, channels: 3 };
}

/**
 * A plain JPEG decoded by `@napi-rs/image`, or undefined: the file is sharp's. sharp keeps what
 * the fast decoder does not do as sharp does: EXIF rotation, ICC and Adobe colour, CMYK,
 * shrink-on-load, truncated files (which the fast decoder fills in silently), pixel bombs (refused
 * by name), and any file the fast decoder fails on.
 */
async function fastJpeg(bytes: Uint8Array, limitInputPixels: number, minSide: number | undefined): Promise<Pixels | undefined> {
  const h = jpegHeader(bytes);
  if (!h || !h.complete || h.icc || h.adobe || h.orientation !== 1 || !FAST_FRAMES.has(h.frame) || h.precision !== 8) return undefined;
  if ((h.components !== 3 && h.components !== 1) || h.width * h.height > limitInputPixels || h.width * h.height === 0) return undefined;
  if (minSide !== undefined && Math.min(h.width, h.height) > minSide) return undefined;
  let data: Buffer;
  try {
    data = await new Transformer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).rawPixels();
  } catch {
    return undefined; // sharp decodes it, or says why not
  }
  if (data.length !== h.width * h.height * 3) return undefined; // not the RGB the header promised
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: h.width, height: h.height, channels: 3 };
}

/**
 * sharp's error, or for a JPEG that stops before its end-of-image marker, one that says so.
 * libvips keeps its error detail in one buffer for all threads, so under concurrent decodes
 * sharp's message for the same truncated file was sometimes "Input buffer has corrupt header:"
 * with the detail lost (seen once in the test suite); the marker check gives the same reason
 * every time.
 */
function truncationNamed(bytes: Uint8Array, err: unknown): Error {
  const error = err instanceof Error ? err : new Error(String(err));
  if (!startsAsJpeg(bytes) || endsAsJpeg(bytes)) return error;
  // libvips repeats its detail once per decode attempt, a line each: keep each distinct line once.
  const detail = [...new Set(error.message.split('\n').map((line) => line.trim()))].filter(Boolean).join('; ');
  return new Error(`truncated JPEG: ${bytes.length} bytes and no end-of-image marker (${detail})`);
}

function checkDecoder(decoder: string | undefined): void {
  if (decoder !== undefined && decoder !== 'auto' && decoder !== 'sharp')
    throw new Error(`decode decoder: expected auto|sharp, got "${decoder}"`);
}

/** Decodes encoded bytes to 8-bit sRGB pixels, or throws with sharp's reason. */
export async function decodeImage(bytes: Uint8Array, options: DecodeOptions = {}): Promise<Pixels> {
  checkDecoder(options.decoder);
  if (bytes.byteLength === 0) throw new Error('empty file (0 bytes)');
  const limitInputPixels = options.limitInputPixels ?? 8192 * 8192;
  if ((options.decoder ?? 'auto') === 'auto') {
    const fast = await fastJpeg(bytes, limitInputPixels, options.minSide);
    if (fast) return fast;
  }
  let image = sharp(bytes, {
    failOn: 'truncated',
    limitInputPixels,
    pages: 1, // animated GIF / WebP / multi-page TIFF: the first frame
  }).autoOrient();
  if (options.minSide !== undefined) {
    image = image.resize({
      width: options.minSide,
      height: options.minSide,
      fit: 'outside', // the shorter side reaches minSide; the aspect ratio is kept
      withoutEnlargement: true,
      fastShrinkOnLoad: true,
    });
  }
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await image.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw truncationNamed(bytes, err);
  }
  const { data, info } = decoded;
  const pixels: Pixels = {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
    channels: info.channels === 1 ? 1 : 3,
  };
  if (info.channels !== 1 && info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 1 or 3`);
  return toRgb(pixels);
}

/**
 * Decodes each sample's `bytes` into RGB `pixels` (and drops the bytes); samples that already
 * carry pixels pass through, expanded to RGB if grey. A sample that cannot be decoded —
 * truncated, empty, not an image, over the pixel limit — is dropped and reported to
 * `onSkip`; the stream never errors on bad input.
 *
 * ```
 * input:   a  b(bad)  c
 * output:  A          C      onSkip({id: b, stage: 'decode', reason})
 * ```
 *
 * @example
 * source$.pipe(decode({ minSide: 500, onSkip: (r) => skipped.write(r) }))
 * @see multiView
 */
export function decode(options: DecodeOptions = {}): OperatorFunction<Sample, Sample> {
  checkDecoder(options.decoder); // refused before any sample is read, not once per sample
  return orderedMergeMap(async (sample: Sample) => {
    try {
      if (sample.pixels) return { ...sample, pixels: toRgb(sample.pixels) };
      if (!sample.bytes) throw new Error('sample has neither bytes nor pixels');
      const pixels = await decodeImage(sample.bytes, options);
      const { bytes: _dropped, ...rest } = sample;
      return { ...rest, pixels };
    } catch (err) {
      options.onSkip?.({ id: sample.id, stage: 'decode', reason: err instanceof Error ? err.message : String(err) });
      return undefined;
    }
  }, options.concurrency ?? 4);
}
