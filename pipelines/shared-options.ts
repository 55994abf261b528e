/**
 * Options several commands declare alike: where compute runs, and where view pixels are cut.
 * Each command's schema spreads them in, so their checks and help read the same everywhere.
 */
import * as z from 'zod';
import { BACKEND_CHOICES } from '../models/backend-choice.js';
import { AUGMENT_CHOICES, type AugmentChoice } from '../operators/augment-path.js';

/** `--backend`, `--threads` and `--verbose`, for every command that computes. */
export const BACKEND_OPTIONS = {
  backend: z.enum(BACKEND_CHOICES).default('auto').meta({
    arg: 'NAME',
    description: 'the compute backend; auto takes the first that loads: tfjs-node-gpu, tfjs-node, webgpu on a hardware adapter, wasm, cpu',
  }),
  threads: z.number().int().min(1).max(8).optional().meta({ arg: 'N', defaultText: 'the cores', description: 'wasm compute threads' }),
  verbose: z
    .boolean()
    .default(false)
    .meta({ flagOnly: true, description: 'also say why each backend before the one taken was passed over' }),
};

/** `--augment`: per image with sharp, per batch by tensor ops on the backend, or the one measured cheaper. */
export function augmentOption(fallback: AugmentChoice) {
  return z.enum(AUGMENT_CHOICES).default(fallback).meta({
    arg: 'WHERE',
    description:
      'where view pixels are cut: per image with sharp (cpu), per batch by tensor ops (backend), or auto: both measured on the first images, the cheaper taken (images of mixed sizes go to the cpu)',
  });
}

/** The foreground masks a view chain can carry: none, saliency, colour k-means, the scenes' ground truth, or the features of an encoder. */
export const VIEW_MASKS = ['none', 'saliency', 'kmeans', 'gt', 'encoder'] as const;
export type ViewMasks = (typeof VIEW_MASKS)[number];
