/**
 * PNG contact sheets for looking at what the pipeline does: one row per sample — the image
 * with every view's box drawn on it, the attention heat-map over the image, the foreground
 * mask over the image, then each view as the trainer sees it. Written atomically.
 */
import sharp from 'sharp';
import { renameSync } from 'node:fs';
import { cutPixels, type Pixels, type Plane, type Sample } from '../core/index.js';
import { partialPath } from '../core/atomic-file.js';

const ROW = 160; // tile height in pixels
const GAP = 4;
const BOX_COLOURS = ['#ff3b30', '#34c759', '#0a84ff', '#ffcc00', '#af52de', '#ff9500', '#5ac8fa', '#ff2d55'];

const rgb = (p: Pixels) => sharp(p.data, { raw: { width: p.width, height: p.height, channels: p.channels } });

/** A perceptual-ish ramp (black → purple → orange → yellow) for a value in [0, 1]. */
function heat(v: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, v));
  return [
    Math.round(255 * Math.min(1, 1.6 * t)),
    Math.round(255 * Math.max(0, 1.6 * t - 0.6)),
    Math.round(255 * (t < 0.5 ? 0.8 * t : 0.8 * (1 - t))),
  ];
}

type Tint = (v: number) => [number, number, number, number]; // RGBA for a value in [0, 1]

/** Attention: the heat ramp, more opaque where attention is high. */
const heatTint: Tint = (v) => [...heat(v), Math.round(255 * 0.65 * Math.max(0.25, v))];
/** Mask: foreground tinted cyan (visible on warm and cool photos alike), background darkened. */
const maskTint: Tint = (v) => (v > 0 ? [0, 230, 255, 110] : [0, 0, 0, 120]);

/** `plane` (any resolution) tinted and blended over the image, at the image's size. */
async function overlay(image: Pixels, plane: Plane | Plane<Float32Array>, tintOf: Tint): Promise<Buffer> {
  const tint = Buffer.alloc(plane.width * plane.height * 4);
  let hi = 0;
  for (const v of plane.data) hi = Math.max(hi, v);
  plane.data.forEach((v, i) => tint.set(tintOf(hi > 0 ? v / hi : 0), i * 4));
  const layer = await sharp(tint, { raw: { width: plane.width, height: plane.height, channels: 4 } })
    .resize(image.width, image.height, { fit: 'fill', kernel: 'nearest' })
    .png()
    .toBuffer();
  return rgb(image)
    .composite([{ input: layer }])
    .png()
    .toBuffer();
}

/** The image with each view's crop box outlined (dashed when the view is flipped). */
async function withBoxes(sample: Sample): Promise<Buffer> {
  const p = sample.pixels as Pixels;
  const stroke = Math.max(2, Math.round(Math.max(p.width, p.height) / 160));
  const rects = (sample.views ?? []).map((v, k) => {
    const [x0, y0, x1, y1] = v.box;
    const dash = v.flipped ? ` stroke-dasharray="${4 * stroke},${2 * stroke}"` : '';
    return `<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${y1 - y0}" fill="none" stroke="${BOX_COLOURS[k % BOX_COLOURS.length]}" stroke-width="${stroke}"${dash}/>`;
  });
  const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${p.width}" height="${p.height}">${rects.join('')}</svg>`);
  return rgb(p)
    .composite([{ input: svg }])
    .png()
    .toBuffer();
}

async function tile(png: Buffer | Pixels): Promise<{ input: Buffer; width: number }> {
  const image = Buffer.isBuffer(png) ? sharp(png) : rgb(png);
  const { data, info } = await image.resize({ height: ROW }).png().toBuffer({ resolveWithObject: true });
  return { input: data, width: info.width };
}

/** Writes one contact sheet of `samples` (decoded, with views; attention and mask optional) to `path`. */
export async function writePreviewSheet(samples: Sample[], path: string): Promise<void> {
  const rows: Array<Array<{ input: Buffer; width: number }>> = [];
  for (const s of samples) {
    const p = s.pixels as Pixels;
    const tiles = [await tile(await withBoxes(s))];
    if (s.attention) tiles.push(await tile(await overlay(p, s.attention, heatTint)));
    if (s.mask) tiles.push(await tile(await overlay(p, s.mask, maskTint)));
    for (let k = 0; k < (s.views?.length ?? 0); k++) tiles.push(await tile(cutPixels(s, k)));
    rows.push(tiles);
  }
  const width = Math.max(...rows.map((r) => r.reduce((a, t) => a + t.width + GAP, GAP)));
  const height = rows.length * (ROW + GAP) + GAP;
  const composites = rows.flatMap((r, y) => {
    let x = GAP;
    return r.map((t) => {
      const at = { input: t.input, left: x, top: GAP + y * (ROW + GAP) };
      x += t.width + GAP;
      return at;
    });
  });
  const partial = partialPath(path);
  await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(composites)
    .png()
    .toFile(partial);
  renameSync(partial, path);
}
