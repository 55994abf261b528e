/**
 * `fashion-mnist[:DIR]` — Zalando's Fashion-MNIST in its IDX files (gzip), as Debian's
 * `dataset-fashion-mnist` installs them. 28×28 grey images with labels 0–9; ids are
 * `fashion-mnist:train:i`. The files are read once into two typed arrays (47 MB for train); a
 * sample's pixels are a read-only view of them.
 *
 * With `groundTruth`, a sample carries per-pixel truth as the scenes do, for `eval`'s dense
 * and mask protocols: the garment's silhouette is every non-zero pixel (Zalando's conversion
 * leaves the background exactly 0: half of all pixels; 1.7 % of those are enclosed, such as a
 * bag's handle or a sandal's straps, and stay background), and its classes are the image's
 * label + 1 on the silhouette, 0 off it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Sample } from '../core/index.js';
import type { RandomAccessSource } from './source.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/** Parses an IDX file: magic `0x0000 08 NDIM`, then NDIM big-endian uint32 sizes, then bytes. */
export function parseIdx(buffer: Uint8Array, file: string): { dims: number[]; data: Uint8Array } {
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (buffer.byteLength < 4 || view.getUint16(0) !== 0 || view.getUint8(2) !== 0x08) {
    throw new Error(`${file}: not an unsigned-byte IDX file`);
  }
  const ndim = view.getUint8(3);
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i));
  const offset = 4 + 4 * ndim;
  const expected = dims.reduce((a, b) => a * b, 1);
  if (buffer.byteLength - offset !== expected) {
    throw new Error(`${file}: header promises ${expected} bytes of data, file holds ${buffer.byteLength - offset}`);
  }
  return { dims, data: buffer.subarray(offset) };
}

export interface FashionMnistOptions {
  /** Derive `gtMask` and `gtClasses` per sample: for `eval`'s dense and mask protocols and `--masks gt`; other runs read neither. */
  groundTruth?: boolean;
}

/** The silhouette (non-zero pixels) and its classes (`label + 1`, background 0) of one grey image. */
function fashionGroundTruth(grey: Uint8Array, label: number, width: number, height: number): Pick<Sample, 'gtMask' | 'gtClasses'> {
  const mask = new Uint8Array(grey.length);
  const classes = new Uint8Array(grey.length);
  for (let i = 0; i < grey.length; i++) {
    if (grey[i] === 0) continue;
    mask[i] = 1;
    classes[i] = label + 1;
  }
  return { gtMask: { data: mask, width, height }, gtClasses: { data: classes, width, height } };
}

async function readIdx(dir: string, name: string) {
  const file = join(dir, name);
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch {
    throw new Error(`fashion-mnist:${dir}: ${name} not found (install Debian's dataset-fashion-mnist, or pass fashion-mnist:DIR)`);
  }
  return parseIdx(new Uint8Array(gunzipSync(raw)), file);
}

export async function fashionMnistSource(
  dir = FASHION_MNIST_DIR,
  split: 'train' | 'test' = 'train',
  options: FashionMnistOptions = {},
): Promise<RandomAccessSource> {
  const prefix = split === 'train' ? 'train' : 't10k';
  const images = await readIdx(dir, `${prefix}-images-idx3-ubyte.gz`);
  const labels = await readIdx(dir, `${prefix}-labels-idx1-ubyte.gz`);
  const [count = 0, height = 0, width = 0] = images.dims;
  if (labels.dims[0] !== count) throw new Error(`fashion-mnist:${dir}: ${count} images but ${labels.dims[0]} labels`);
  const plane = width * height;
  return {
    name: `fashion-mnist:${dir} (${split})`,
    size: count,
    id: (i) => `fashion-mnist:${split}:${i}`,
    read: async (i) => {
      // A view of the file's array, not a copy: a copy per read was an ArrayBuffer per image, and
      // with 128 images a step they brought on a full collection every two or three steps
      // (measured: 21–23 mark-compacts in 60 steps, 3 with views). Read it, never write it;
      // decode() makes the RGB copy the pipeline works on.
      const grey = images.data.subarray(i * plane, (i + 1) * plane);
      const label = labels.data[i] as number;
      return {
        id: `fashion-mnist:${split}:${i}`,
        pixels: { data: grey, width, height, channels: 1 },
        label,
        ...(options.groundTruth ? fashionGroundTruth(grey, label, width, height) : {}),
      };
    },
  };
}
