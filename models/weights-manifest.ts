/**
 * `weights.json`, the manifest `weights-io.ts` writes beside `weights.bin`: the tensors' names,
 * shapes and dtypes, the size and SHA-256 of the binary, and the run's own meta JSON. Read here
 * without tfjs, so a command can check a checkpoint's configuration before loading the engine.
 */
import type * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface WeightsJson {
  format: 'densestream-weights';
  version: 1;
  weights: tf.io.WeightsManifestEntry[];
  /** `weights.bin` as written (absent in checkpoints from before it was recorded). */
  bin?: { bytes: number; sha256: string };
  meta: unknown;
}

/** `dir/weights.json`, parsed, or an error that names the file. */
export function readWeightsJson(dir: string): WeightsJson {
  const path = join(dir, 'weights.json');
  let json: WeightsJson;
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as WeightsJson;
  } catch (err) {
    throw new Error(`${path}: cannot read this checkpoint's manifest (${err instanceof Error ? err.message : String(err)})`);
  }
  if (json?.format !== 'densestream-weights') throw new Error(`${path}: not a densestream weights file`);
  return json;
}

/** Reads the `meta` JSON saved with the weights in `dir`. */
export function readWeightsMeta(dir: string): unknown {
  return readWeightsJson(dir).meta;
}
