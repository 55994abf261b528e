/**
 * Loads a tfjs model saved on local disk (`model.json` plus its weight files). tfjs's own
 * `file://` handler lives in tfjs-node, which cannot install here; this reads the same format
 * with `fs` and hands tfjs the artifacts. Graph models (converted from TF/Keras/PyTorch via
 * ONNX) and layers models both load.
 */
import * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

interface ModelJson {
  format?: string;
  modelTopology?: unknown;
  weightsManifest?: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  [key: string]: unknown;
}

/** The artifacts of `model.json` at `path` (or of `path/model.json`), with every weight shard read. */
export async function readModelArtifacts(path: string): Promise<tf.io.ModelArtifacts & { format?: string }> {
  const file = path.endsWith('.json') ? path : join(path, 'model.json');
  let json: ModelJson;
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as ModelJson;
  } catch (err) {
    throw new Error(`model:${path}: cannot read ${file} (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!json.modelTopology || !json.weightsManifest)
    throw new Error(`model:${path}: ${file} is not a tfjs model.json (no modelTopology / weightsManifest)`);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const shards: Buffer[] = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const shard of group.paths) shards.push(await readFile(join(dirname(file), shard)));
  }
  const bytes = Buffer.concat(shards);
  return {
    format: json.format,
    modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs: specs,
    weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  };
}

/** A loaded model: graph or layers, one call to run it. */
export interface LoadedModel {
  inputShape: number[];
  predict(input: tf.Tensor): tf.Tensor;
  dispose(): void;
}

export async function loadModel(path: string): Promise<LoadedModel> {
  const artifacts = await readModelArtifacts(path);
  const handler = tf.io.fromMemory(artifacts);
  if (artifacts.format === 'graph-model') {
    const graph = await tf.loadGraphModel(handler);
    return {
      inputShape: graph.inputs[0]?.shape ?? [],
      predict: (x) => graph.predict(x) as tf.Tensor,
      dispose: () => graph.dispose(),
    };
  }
  const layers = await tf.loadLayersModel(handler);
  return {
    inputShape: (layers.inputs[0]?.shape ?? []).map((d) => d ?? -1),
    predict: (x) => layers.predict(x) as tf.Tensor,
    dispose: () => layers.dispose(),
  };
}
