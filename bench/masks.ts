/**
 * `npm run bench -- masks [--images 1000] [--map-size 64]`: foreground masks and attention crops
 * against the scenes' ground truth, with the saliency map's long side `--map-size` (its masks
 * are scaled to the scene, nearest, to be scored).
 * - maskIoU: mean IoU of the saliency mask (and of the k-means mask) with the true foreground;
 * - coverage: a crop covers an image when it holds ≥ 50 % of the largest object's pixels —
 *   the attention crop vs the `mocov2` random resized crop (scale 0.2–1);
 * - msPerImage: attention map + mask, against decoding a 224×224 JPEG in the same run.
 */
import sharp from 'sharp';
import { parseArgs } from 'node:util';
import { renderScene } from '../datasets/scenes.js';
import { attentionCropBox } from '../operators/attention-crop.js';
import { presetViews } from '../operators/augment-presets.js';
import { decodeImage } from '../operators/decode.js';
import { kmeansMask, maskFromAttention } from '../operators/foreground-mask.js';
import { saliencyMap } from '../operators/saliency.js';
import { keyedRng, type Box, type Plane, type Sample } from '../core/index.js';
import { randomResizedCropBox } from '../operators/view-geometry.js';
import { positiveInt } from '../pipelines/options.js';
import { maskIoU, resizeNearest } from '../train/segmentation-metrics.js';
import { printJson } from './report.js';

/** Does `box` hold at least half of the pixels of the sample's largest visible object? */
export function coversLargestObject(sample: Sample, box: Box): boolean {
  const inst = sample.gtInstances as Plane;
  const counts = new Map<number, number>();
  for (const v of inst.data) if (v) counts.set(v, (counts.get(v) ?? 0) + 1);
  let largest = 0;
  let size = 0;
  for (const [k, c] of counts) if (c > size) [largest, size] = [k, c];
  if (size === 0) return true;
  let inside = 0;
  for (let p = 0; p < inst.data.length; p++) {
    if (inst.data[p] !== largest) continue;
    const x = p % inst.width;
    const y = Math.floor(p / inst.width);
    if (x >= box[0] && x < box[2] && y >= box[1] && y < box[3]) inside++;
  }
  return inside >= size / 2;
}

async function jpegDecodeMs(runs: number): Promise<number> {
  const photo = renderScene(99, 0, 224).pixels!;
  const jpeg = await sharp(photo.data, { raw: { width: 224, height: 224, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
  for (let i = 0; i < 20; i++) await decodeImage(jpeg);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await decodeImage(jpeg);
  return (performance.now() - t0) / runs;
}

export async function masksBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { images: { type: 'string', default: '1000' }, 'map-size': { type: 'string', default: '64' } },
  });
  const n = positiveInt(values.images, '--images');
  const mapSize = positiveInt(values['map-size'], '--map-size');
  const random = presetViews('mocov2', 64)[0]!;
  let iou = 0;
  let kmeansIou = 0;
  let attentionCovered = 0;
  let randomCovered = 0;
  let ms = 0;
  let kmeansMs = 0;
  for (let i = 0; i < n; i++) {
    const s = renderScene(0, i);
    const t0 = performance.now();
    const attention = saliencyMap(s.pixels!, { size: mapSize });
    const mask = maskFromAttention(attention);
    const t1 = performance.now();
    const km = kmeansMask(s.pixels!, s.id);
    kmeansMs += performance.now() - t1;
    ms += t1 - t0;
    const truth = s.gtMask!;
    iou += maskIoU(
      mask.width === truth.width && mask.height === truth.height ? mask : resizeNearest(mask, truth.width, truth.height),
      truth,
    );
    kmeansIou += maskIoU(km, s.gtMask!);
    if (coversLargestObject(s, attentionCropBox(keyedRng(0, 'view', 0, s.id, 0), attention, 64, 64).box)) attentionCovered++;
    if (coversLargestObject(s, randomResizedCropBox(keyedRng(0, 'view', 0, s.id, 1), 64, 64, random.scale, random.ratio))) randomCovered++;
  }
  const decodeMs = await jpegDecodeMs(500);
  printJson({ bench: 'masks-kmeans', images: n, maskIoU: kmeansIou / n, msPerImage: kmeansMs / n });
  printJson({
    bench: 'masks',
    images: n,
    mapSize,
    maskIoU: iou / n,
    kmeansMaskIoU: kmeansIou / n,
    attentionCropCoverage: attentionCovered / n,
    randomCropCoverage: randomCovered / n,
    msPerImage: ms / n,
    jpeg224DecodeMs: decodeMs,
  });
}
