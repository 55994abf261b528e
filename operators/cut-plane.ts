import type { Box, Plane } from '../core/index.js';

/**
 * Cuts `box` (source-pixel coordinates of a `sourceWidth × sourceHeight` image) out of a map
 * that covers the whole source at its own resolution, resizes it to `width × height` by
 * nearest neighbour (masks stay binary, class maps stay integral) and mirrors it when the
 * view is flipped — the same geometry as the view's pixels.
 */
export function cutPlane<T extends Uint8Array | Float32Array>(
  plane: Plane<T>,
  box: Box,
  sourceWidth: number,
  sourceHeight: number,
  width: number,
  height: number,
  flipped: boolean,
): Plane<T> {
  const sx = plane.width / sourceWidth;
  const sy = plane.height / sourceHeight;
  const [x0, y0, x1, y1] = box;
  const stepX = ((x1 - x0) * sx) / width;
  const stepY = ((y1 - y0) * sy) / height;
  const data = new (plane.data.constructor as new (n: number) => T)(width * height);
  const columns = new Int32Array(width);
  for (let x = 0; x < width; x++) {
    const vx = flipped ? width - 1 - x : x;
    columns[x] = Math.min(plane.width - 1, Math.max(0, Math.floor(x0 * sx + (vx + 0.5) * stepX)));
  }
  for (let y = 0; y < height; y++) {
    const py = Math.min(plane.height - 1, Math.max(0, Math.floor(y0 * sy + (y + 0.5) * stepY)));
    const row = py * plane.width;
    for (let x = 0; x < width; x++) data[y * width + x] = plane.data[row + (columns[x] as number)] as number;
  }
  return { data, width, height };
}
