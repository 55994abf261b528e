/**
 * `npm run bench -- cells RUN|random … [--test 1000]`: how an encoder's grid cells sit within an
 * image, on held-out scenes at the run's trained size. Each cell is L2-normalised and called
 * foreground when more than half of its pixels are; then, over every pair of cells of one image:
 * - `fgfg`, `bgbg`, `fgbg`: the mean cosine of two foreground cells, two background cells, one
 *   of each;
 * - `contrast` = (fgfg + bgbg) / 2 − fgbg: how far the cells split into object and background,
 *   which the 2-means masks of `eval --protocol masks` need;
 * - `fgAcross`, `bgAcross`: the same cosines between a cell and the cells of the next image, so
 *   `bgbg − bgAcross` is how much a background cell says which image it is from.
 * Why: DenseCL scores below MoCo v2 on dense mIoU and mask IoU at the recipe; these say what its
 * dense term does to the cells (docs/experiments.md, "What DenseCL does to the cells here").
 */
import { parseArgs } from 'node:util';
import { openSource } from '../pipelines/data-source.js';
import { HELD_OUT_SCENES_SEED } from '../pipelines/eval-options.js';
import { loadLabelledImages } from '../pipelines/evaluate.js';
import { embedImages } from '../pipelines/eval-protocols.js';
import { loadCheckpointEncoder, randomInitEncoder } from '../pipelines/checkpoint-encoder.js';
import { DEFAULT_RECIPE } from '../pipelines/recipe.js';
import { positiveInt } from '../pipelines/options.js';
import { checkpointDir } from '../pipelines/run-folder.js';
import { selectBackend } from '../models/backend.js';
import { printJson } from './report.js';

export interface CellSimilarities {
  fgfg: number;
  bgbg: number;
  fgbg: number;
  contrast: number;
  /** Foreground–foreground and background–background cosines across images (image i with i + 1). */
  fgAcross: number;
  bgAcross: number;
  /** Pairs counted: two foreground cells, two background cells, one of each. */
  pairs: { fgfg: number; bgbg: number; fgbg: number; fgAcross: number; bgAcross: number };
}

/**
 * Mean within-image cosines of `dense` `[images, grid, grid, dims]` by the cells' ground truth,
 * from `foreground` `[images, size, size]` (0 / 1), `size` a multiple of `grid`.
 */
export function cellSimilarities(dense: Float32Array, dims: number, grid: number, foreground: Uint8Array, size: number): CellSimilarities {
  const cells = grid * grid;
  const images = dense.length / (cells * dims);
  const px = size / grid;
  if (!Number.isInteger(images) || !Number.isInteger(px) || foreground.length !== images * size * size)
    throw new Error(
      `cellSimilarities: ${dense.length} values, ${dims} dims, a ${grid}² grid and ${foreground.length} mask pixels of ${size}² do not agree`,
    );
  const sums = { fgfg: 0, bgbg: 0, fgbg: 0, fgAcross: 0, bgAcross: 0 };
  const pairs = { fgfg: 0, bgbg: 0, fgbg: 0, fgAcross: 0, bgAcross: 0 };
  const unit = new Float32Array(images * cells * dims);
  const isFg = new Array<boolean>(images * cells);
  for (let cell = 0; cell < images * cells; cell++) {
    const at = cell * dims;
    let norm = 0;
    for (let k = 0; k < dims; k++) norm += (dense[at + k] as number) ** 2;
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let k = 0; k < dims; k++) unit[at + k] = (dense[at + k] as number) * inv;
    const i = Math.floor(cell / cells);
    const top = Math.floor((cell % cells) / grid) * px;
    const left = (cell % grid) * px;
    let on = 0;
    for (let y = top; y < top + px; y++) for (let x = left; x < left + px; x++) on += foreground[(i * size + y) * size + x] as number;
    isFg[cell] = on > (px * px) / 2;
  }
  const cosine = (a: number, b: number) => {
    let dot = 0;
    for (let k = 0; k < dims; k++) dot += (unit[a * dims + k] as number) * (unit[b * dims + k] as number);
    return dot;
  };
  for (let i = 0; i < images; i++) {
    const next = ((i + 1) % images) * cells;
    for (let a = i * cells; a < (i + 1) * cells; a++) {
      for (let b = a + 1; b < (i + 1) * cells; b++) {
        const kind = isFg[a] && isFg[b] ? 'fgfg' : !isFg[a] && !isFg[b] ? 'bgbg' : 'fgbg';
        sums[kind] += cosine(a, b);
        pairs[kind]++;
      }
      if (images === 1) continue;
      for (let b = next; b < next + cells; b++) {
        if (isFg[a] !== isFg[b]) continue;
        const kind = isFg[a] ? 'fgAcross' : 'bgAcross';
        sums[kind] += cosine(a, b);
        pairs[kind]++;
      }
    }
  }
  const mean = (k: keyof typeof sums) => sums[k] / pairs[k];
  const fgfg = mean('fgfg');
  const bgbg = mean('bgbg');
  const fgbg = mean('fgbg');
  return { fgfg, bgbg, fgbg, contrast: (fgfg + bgbg) / 2 - fgbg, fgAcross: mean('fgAcross'), bgAcross: mean('bgAcross'), pairs };
}

export async function cellsBench(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { test: { type: 'string', default: '1000' } } });
  if (positionals.length === 0) throw new Error('usage: npm run bench -- cells RUN|random … [--test 1000]');
  const test = positiveInt(values.test, '--test');
  await selectBackend('wasm');
  const source = await openSource('scenes', { scenes: { seed: HELD_OUT_SCENES_SEED } });
  for (const run of positionals) {
    const model =
      run === 'random' ? randomInitEncoder('slim', 0, DEFAULT_RECIPE.size) : loadCheckpointEncoder(checkpointDir(run, 'bench cells'));
    const images = await loadLabelledImages(source, test, model.trainedSize);
    const features = await embedImages(model.encoder, images, images.count).finally(() => model.encoder.dispose());
    const r = cellSimilarities(features.dense as Float32Array, features.dims, features.grid, images.foreground as Uint8Array, images.size);
    const round = (x: number) => Number(x.toFixed(4));
    printJson({
      bench: 'cells',
      run,
      images: images.count,
      grid: features.grid,
      fgfg: round(r.fgfg),
      bgbg: round(r.bgbg),
      fgbg: round(r.fgbg),
      contrast: round(r.contrast),
      fgAcross: round(r.fgAcross),
      bgAcross: round(r.bgAcross),
      pairs: r.pairs,
    });
  }
}
