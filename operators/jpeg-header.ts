/**
 * What a JPEG's markers say before its first scan: its size and components, its EXIF
 * orientation, whether it carries an ICC profile or Adobe's colour transform, and whether the
 * file ends where a JPEG ends. `decode()` reads it to decide whether the fast decoder gives the
 * image as sharp would (a plain sRGB photo, upright, whole) or sharp must decode it.
 */

/** The frame and file facts `decodeImage` needs; see {@link jpegHeader}. */
export interface JpegHeader {
  width: number;
  height: number;
  /** Colour components of the frame: 1 (grey), 3 (YCbCr), 4 (CMYK / YCCK). */
  components: number;
  /** Bits per sample: 8, or 12 (extended JPEGs). */
  precision: number;
  /** The start-of-frame marker: 0xc0 baseline, 0xc1 extended, 0xc2 progressive, others rarer (lossless, arithmetic, hierarchical). */
  frame: number;
  /** EXIF orientation (1–8), or 1 when the file has none. */
  orientation: number;
  /** An embedded ICC profile (APP2 `ICC_PROFILE`). */
  icc: boolean;
  /** Adobe's APP14 segment (its colour transform flag: CMYK, YCCK, or RGB stored untransformed). */
  adobe: boolean;
  /** The file ends with the end-of-image marker: a truncated download does not. */
  complete: boolean;
}

const readU16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);

/** A JPEG's start-of-image marker opens `bytes`. */
export const startsAsJpeg = (bytes: Uint8Array): boolean => bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xd8;

/** The end-of-image marker closes `bytes`: a truncated download does not end with it. */
export const endsAsJpeg = (bytes: Uint8Array): boolean =>
  bytes.length >= 4 && bytes[bytes.length - 2] === 0xff && bytes[bytes.length - 1] === 0xd9;

/**
 * The header of a JPEG, or undefined when `bytes` is not one or its markers before the first
 * scan do not parse (the caller leaves such files to sharp, which says what is wrong).
 */
export function jpegHeader(bytes: Uint8Array): JpegHeader | undefined {
  if (bytes.length < 4 || !startsAsJpeg(bytes)) return undefined;
  const header: Partial<JpegHeader> & { orientation: number; icc: boolean; adobe: boolean } = { orientation: 1, icc: false, adobe: false };
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return undefined;
    const marker = bytes[at + 1] as number;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2; // no length
      continue;
    }
    const length = readU16(bytes, at + 2);
    const body = at + 4;
    const end = at + 2 + length;
    if (length < 2 || end > bytes.length) return undefined;
    if (marker === 0xda) break; // start of scan: the header is over
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame && length >= 8) {
      header.frame = marker;
      header.precision = bytes[body] as number;
      header.height = readU16(bytes, body + 1);
      header.width = readU16(bytes, body + 3);
      header.components = bytes[body + 5] as number;
    } else if (marker === 0xe1 && ascii(bytes, body, 6) === 'Exif\0\0') {
      header.orientation = exifOrientation(bytes, body + 6, end) ?? header.orientation;
    } else if (marker === 0xe2 && ascii(bytes, body, 12) === 'ICC_PROFILE\0') {
      header.icc = true;
    } else if (marker === 0xee && ascii(bytes, body, 5) === 'Adobe') {
      header.adobe = true;
    }
    at = end;
  }
  const { width, height, components, frame, precision } = header;
  if (width === undefined || height === undefined || components === undefined || frame === undefined || precision === undefined)
    return undefined;
  return {
    width,
    height,
    components,
    precision,
    frame,
    orientation: header.orientation,
    icc: header.icc,
    adobe: header.adobe,
    complete: endsAsJpeg(bytes),
  };
}

function ascii(b: Uint8Array, at: number, n: number): string {
  return at + n <= b.length ? String.fromCharCode(...b.subarray(at, at + n)) : '';
}

/** Tag 0x0112 of IFD0 in the TIFF structure at `tiff` (the EXIF segment's body), or undefined. */
function exifOrientation(b: Uint8Array, tiff: number, end: number): number | undefined {
  if (tiff + 8 > end) return undefined;
  const little = b[tiff] === 0x49 && b[tiff + 1] === 0x49; // "II"; "MM" is big-endian
  const u16 = (at: number) => (little ? (b[at] as number) | ((b[at + 1] as number) << 8) : readU16(b, at));
  const u32 = (at: number) => (little ? u16(at) + u16(at + 2) * 65536 : u16(at) * 65536 + u16(at + 2));
  const ifd = tiff + u32(tiff + 4);
  if (ifd + 2 > end) return undefined;
  const entries = u16(ifd);
  for (let i = 0; i < entries; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > end) return undefined;
    if (u16(entry) === 0x0112) return u16(entry + 8);
  }
  return undefined;
}
