/**
 * Saves and restores named variables in tfjs's weight format: `weights.bin` (the tensors,
 * packed by `tf.io.encodeWeights`) and `weights.json` (the manifest plus a user JSON such as
 * the model config). Files are written under temporary names and renamed, so a killed job
 * never leaves a half-written file under the real name. `weights.json` records the size and
 * SHA-256 of `weights.bin`; a reader checks them first, so a damaged file is refused with its
 * name instead of failing deep in tfjs ("the tensor should have 524288 values but has 250000").
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readWeightsJson, type WeightsJson } from './weights-manifest.js';
import { writeFileAtomic } from '../core/atomic-file.js';

/** A tensor with its saved name (tfjs's optimiser slots use this shape). */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** `dir/weights.bin`, checked against the size and SHA-256 its manifest recorded. */
function readWeightsBin(dir: string, manifest: WeightsJson): Buffer<ArrayBuffer> {
  const path = join(dir, 'weights.bin');
  const bin = readFileSync(path);
  const expected = manifest.bin;
  if (expected && bin.byteLength !== expected.bytes) {
    throw new Error(
      `${path}: ${bin.byteLength} bytes, ${expected.bytes} when it was written; the checkpoint is damaged (cut short or overwritten)`,
    );
  }
  if (expected && sha256(bin) !== expected.sha256) {
    throw new Error(`${path}: its SHA-256 differs from the one recorded when it was written; the checkpoint is damaged`);
  }
  return bin;
}

/** Checks the checkpoint in `dir` as a reader would, without decoding it: throws, naming the file, if it is damaged. */
export function verifySaved(dir: string): void {
  readWeightsBin(dir, readWeightsJson(dir));
}

/** Writes `weights` (logical name → variable or tensor) and `meta` into `dir`. */
export async function saveVariables(weights: Readonly<Record<string, tf.Tensor>>, dir: string, meta: unknown = null): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const named = Object.entries(weights).map(([name, v]) => ({ name, tensor: v as tf.Tensor }));
  const { data, specs } = await tf.io.encodeWeights(named);
  const bytes = new Uint8Array(data as ArrayBuffer);
  writeFileAtomic(join(dir, 'weights.bin'), bytes);
  const manifest: WeightsJson = {
    format: 'densestream-weights',
    version: 1,
    weights: specs,
    bin: { bytes: bytes.byteLength, sha256: sha256(bytes) },
    meta,
  };
  writeFileAtomic(join(dir, 'weights.json'), JSON.stringify(manifest, null, 2)); // last: its presence means complete
}

/** A checkpoint read once: its meta JSON and every tensor in saved order. The caller disposes the tensors. */
export interface SavedWeights {
  dir: string;
  meta: unknown;
  tensors: NamedTensor[];
}

/** Reads and decodes `dir` once. */
export function readSaved(dir: string): SavedWeights {
  const manifest = readWeightsJson(dir);
  const bin = readWeightsBin(dir, manifest);
  const all = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), manifest.weights);
  return { dir, meta: manifest.meta, tensors: manifest.weights.map((spec) => ({ name: spec.name, tensor: all[spec.name] as tf.Tensor })) };
}

/**
 * Assigns saved tensors to `weights`, matched by logical name (so a momentum encoder can load
 * an online encoder's checkpoint); a missing name or a shape mismatch is refused, naming the
 * weight.
 */
export function assignSaved(weights: Readonly<Record<string, tf.Variable>>, saved: SavedWeights): void {
  const byName = new Map(saved.tensors.map((t) => [t.name, t.tensor]));
  for (const [name, v] of Object.entries(weights)) {
    const tensor = byName.get(name);
    if (!tensor) throw new Error(`${saved.dir}: no saved weight named ${name}`);
    if (tensor.shape.join() !== v.shape.join()) {
      throw new Error(`${saved.dir}: ${name} has shape [${tensor.shape.join(', ')}] on disk, [${v.shape.join(', ')}] in the model`);
    }
    v.assign(tensor);
  }
}

/** {@link readSaved} then {@link assignSaved}, freeing what was read. */
export function loadVariables(weights: Readonly<Record<string, tf.Variable>>, dir: string): void {
  const saved = readSaved(dir);
  try {
    assignSaved(weights, saved);
  } finally {
    tf.dispose(saved.tensors.map((t) => t.tensor));
  }
}

/**
 * The saved tensors whose names start with `prefix`, in the order they were saved (optimisers
 * restore their slots by position), with the prefix removed; the others are freed.
 */
export function takeTensors(saved: SavedWeights, prefix: string): NamedTensor[] {
  const out: NamedTensor[] = [];
  for (const { name, tensor } of saved.tensors) {
    if (name.startsWith(prefix)) out.push({ name: name.slice(prefix.length), tensor });
    else tensor.dispose();
  }
  return out;
}

/** {@link takeTensors} of a checkpoint folder. */
export function readTensors(dir: string, prefix: string): NamedTensor[] {
  return takeTensors(readSaved(dir), prefix);
}
