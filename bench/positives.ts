/**
 * `positives [--data fashion-mnist] [--n 10000] [--k 10] [--size 32] [--seed 0] [--checkpoint RUN | --train-steps 300]
 * [--kmeans-n 100000] [--kmeans-d 128] [--kmeans-k 100]`: how often a clustering positive
 * shares its anchor's class, on the first n images of a labelled source (`--data`, as `train`
 * reads it: `fashion-mnist[:DIR]`, its training split, by default, or `scenes[:SIZE[:COUNT]]`;
 * sources that hand over decoded, labelled pixels).
 *
 * For each embedding — (a) a random-init slim ResNet, (b) a trained encoder from `--checkpoint`
 * (without one, the bench first trains MoCo v2 for `--train-steps` 300 on the same source), (c) none: random pairing (one cluster of all
 * images) — the whole images are embedded (pooled features, L2-normalised, inference mode; grey
 * → 3 channels, ImageNet-normalised like `batch`, resized bilinearly to `--size`, or the
 * checkpoint's training size), clustered by `sphericalKMeans` into k clusters, and each image
 * draws its positive from its cluster by `clusterPositives`' rule (`choosePositive`, epoch 0).
 * Positive purity = the fraction of positives with the anchor's label (random pairing: about
 * 1/classes for balanced classes). Each line also gives the clustering's purity and ARI. (A
 * softrank run clusters its target's embeddings of augmented views, not of whole images; these
 * are what the encoder itself can tell apart.)
 *
 * Then the seconds of `sphericalKMeans` on `--kmeans-n` × `--kmeans-d` planted blobs, k =
 * `--kmeans-k` (the kmeans bench's data). The last line:
 * `{"bench":"positives","purityRandomPairs","purityRandomInit","purityTrained","kmeansSeconds","n","k","d",…}`
 * with n, k, d those of the purity runs (images, clusters, random-init embedding dims) and the
 * timing's shape as kmeansN, kmeansK, kmeansD.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isRandomAccess } from '../datasets/source.js';
import { l2Normalize } from '../methods/losses.js';
import { selectBackend } from '../models/backend.js';
import { RESNET_PRESETS, type Encoder } from '../models/encoder-spec.js';
import { createResNet } from '../models/resnet.js';
import { normalizeRgb } from '../operators/batch.js';
import { toRgb } from '../operators/decode.js';
import { ClusterIndex } from '../positives/cluster-index.js';
import { choosePositive } from '../positives/cluster-positives.js';
import { sphericalKMeans } from '../positives/kmeans.js';
import { adjustedRandIndex, clusterPurity } from '../positives/cluster-metrics.js';
import { loadCheckpointEncoder } from '../pipelines/checkpoint-encoder.js';
import { openSource } from '../pipelines/data-source.js';
import { positiveInt } from '../pipelines/options.js';
import { sphereBlobs } from './kmeans.js';
import { printJson } from './report.js';
import { checkpointDir } from '../pipelines/run-folder.js';

/** Images embedded per forward pass. */
const EMBED_BATCH = 250;

interface Images {
  ids: string[];
  labels: Int32Array;
  /** `[n, h, w, 3]` RGB bytes (a grey image's one channel thrice). */
  rgb: Uint8Array;
  width: number;
  height: number;
}

async function readImages(data: string, n: number): Promise<Images> {
  const source = await openSource(data);
  if (!isRandomAccess(source)) throw new Error(`--data ${data}: expected a source read by index (fashion-mnist, scenes), not a stream`);
  if (n > source.size) throw new Error(`--n: ${n} images asked, ${source.name} holds ${source.size}`);
  const pixelsOf = async (i: number) => {
    const s = await source.read(i);
    if (!s.pixels) throw new Error(`${s.id}: the positives bench reads decoded pixels (fashion-mnist, scenes), got encoded bytes`);
    if (s.label === undefined) throw new Error(`${s.id}: no label; the bench scores positives by class`);
    return { id: s.id, label: s.label, pixels: toRgb(s.pixels) };
  };
  const first = await pixelsOf(0);
  const { width, height } = first.pixels;
  const plane = width * height * 3;
  const rgb = new Uint8Array(n * plane);
  const labels = new Int32Array(n);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { id, label, pixels } = i === 0 ? first : await pixelsOf(i);
    if (pixels.width !== width || pixels.height !== height)
      throw new Error(`${id}: ${pixels.width}×${pixels.height}; expected every image ${width}×${height}`);
    rgb.set(pixels.data, i * plane);
    labels[i] = label;
    ids.push(id);
  }
  return { ids, labels, rgb, width, height };
}

/** L2-normalised pooled features `[n, C]` of every image, resized to `size` px. */
function embed(encoder: Encoder, images: Images, size: number): Float32Array {
  const { width, height } = images;
  const n = images.ids.length;
  const plane = width * height * 3;
  const out = new Float32Array(n * encoder.channels);
  for (let start = 0; start < n; start += EMBED_BATCH) {
    const b = Math.min(EMBED_BATCH, n - start);
    const rgb = new Float32Array(b * plane);
    normalizeRgb(images.rgb.subarray(start * plane, (start + b) * plane), rgb);
    const features = tf.tidy(() => {
      let x = tf.tensor4d(rgb, [b, height, width, 3]);
      if (size !== width || size !== height) x = tf.image.resizeBilinear(x, [size, size]);
      return l2Normalize(encoder.apply(x, { training: false }).pooled);
    });
    out.set(features.dataSync(), start * encoder.channels);
    features.dispose();
  }
  return out;
}

/** The fraction of anchors whose positive (by `choosePositive`) carries the anchor's label. */
function positivePurity(index: ClusterIndex, images: Images, seed: number): { purity: number; selfPositives: number } {
  const rowOf = new Map(images.ids.map((id, i) => [id, i]));
  let same = 0;
  let selfPositives = 0;
  images.ids.forEach((id, i) => {
    const choice = choosePositive(index, id, seed, 0);
    if (choice.id === id) selfPositives++;
    if (images.labels[rowOf.get(choice.id) as number] === images.labels[i]) same++;
  });
  return { purity: same / images.ids.length, selfPositives };
}

interface PurityResult {
  purity: number;
  dims: number;
}

function clusterAndPair(
  name: string,
  rows: Float32Array,
  dims: number,
  images: Images,
  k: number,
  seed: number,
  extra: Record<string, unknown>,
): PurityResult {
  const t0 = performance.now();
  const { assignments, iterations } = sphericalKMeans(rows, dims, { k, seed });
  const kmeansSeconds = (performance.now() - t0) / 1000;
  const { purity, selfPositives } = positivePurity(new ClusterIndex(images.ids, assignments), images, seed);
  printJson({
    bench: 'positives-embedding',
    embedding: name,
    ...extra,
    n: images.ids.length,
    d: dims,
    k,
    positivePurity: purity,
    selfPositives,
    clusterPurity: clusterPurity(assignments, images.labels),
    ari: adjustedRandIndex(assignments, images.labels),
    kmeansSeconds,
    iterations,
  });
  return { purity, dims };
}

/**
 * Without `--checkpoint`: MoCo v2 on the same source, 32 px, batch 64, for `steps` steps (300:
 * about 10 minutes here), by the CLI in a child process; returns its checkpoint folder.
 */
function trainCheckpoint(steps: number, data: string): string {
  const out = mkdtempSync(join(tmpdir(), 'densestream-bench-positives-'));
  const cli = fileURLToPath(new URL('../pipelines/cli.js', import.meta.url));
  process.stderr.write(`positives: no --checkpoint; training mocov2 for ${steps} steps into ${out}\n`);
  const run = spawnSync(
    process.execPath,
    [
      cli,
      'train',
      '--data',
      data,
      '--method',
      'mocov2',
      '--size',
      '32',
      '--batch',
      '64',
      '--steps',
      String(steps),
      '--out',
      out,
      '--log-every',
      '50',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (run.status !== 0) throw new Error(`positives: training the checkpoint failed (exit ${run.status})`);
  return checkpointDir(out);
}

export async function positivesBench(argv: string[] = []): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string', default: '10000' },
      k: { type: 'string', default: '10' },
      size: { type: 'string', default: '32' },
      seed: { type: 'string', default: '0' },
      checkpoint: { type: 'string' },
      'train-steps': { type: 'string', default: '300' },
      data: { type: 'string', default: 'fashion-mnist' },
      'kmeans-n': { type: 'string', default: '100000' },
      'kmeans-d': { type: 'string', default: '128' },
      'kmeans-k': { type: 'string', default: '100' },
    },
  });
  const n = positiveInt(values.n, '--n');
  const k = positiveInt(values.k, '--k');
  const size = positiveInt(values.size, '--size');
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new Error(`--seed: expected an integer, got "${values.seed}"`);
  if (k > n) throw new Error(`--k: ${k} clusters of ${n} images; expected k ≤ n`);
  const kmeansN = positiveInt(values['kmeans-n'], '--kmeans-n');
  const kmeansD = positiveInt(values['kmeans-d'], '--kmeans-d');
  const kmeansK = positiveInt(values['kmeans-k'], '--kmeans-k');
  const checkpoint =
    values.checkpoint === undefined
      ? trainCheckpoint(positiveInt(values['train-steps'], '--train-steps'), values.data)
      : checkpointDir(values.checkpoint);

  const images = await readImages(values.data, n);
  const { backend } = await selectBackend('wasm');

  // (c) Random pairing: one cluster holding every image.
  const { purity: purityRandomPairs } = positivePurity(new ClusterIndex(images.ids, new Int32Array(n)), images, seed);
  printJson({ bench: 'positives-embedding', embedding: 'random-pairs', n, positivePurity: purityRandomPairs });

  // (a) A random-init encoder.
  const randomInit = createResNet(RESNET_PRESETS.slim, seed, 'positives-bench/random-init');
  let t0 = performance.now();
  const randomRows = embed(randomInit, images, size);
  const random = clusterAndPair('random-init', randomRows, randomInit.channels, images, k, seed, {
    encoder: 'slim',
    size,
    backend,
    embedSeconds: (performance.now() - t0) / 1000,
  });
  randomInit.dispose();

  // (b) A trained encoder.
  let purityTrained: number | null = null;
  {
    const trained = loadCheckpointEncoder(checkpoint);
    t0 = performance.now();
    const rows = embed(trained.encoder, images, trained.trainedSize);
    purityTrained = clusterAndPair('trained', rows, trained.encoder.channels, images, k, seed, {
      encoder: trained.encoderName,
      size: trained.trainedSize,
      checkpoint,
      step: trained.step,
      embedSeconds: (performance.now() - t0) / 1000,
    }).purity;
    trained.encoder.dispose();
  }

  // k-means at scale: the kmeans bench's planted blobs.
  const blobs = sphereBlobs(kmeansN, kmeansD, kmeansK, 0.1, seed);
  t0 = performance.now();
  const result = sphericalKMeans(blobs.rows, kmeansD, { k: kmeansK, seed });
  const kmeansSeconds = (performance.now() - t0) / 1000;
  printJson({
    bench: 'positives-kmeans',
    n: kmeansN,
    d: kmeansD,
    k: kmeansK,
    seconds: kmeansSeconds,
    iterations: result.iterations,
    batches: result.batches,
    ari: adjustedRandIndex(result.assignments, blobs.labels),
  });

  printJson({
    bench: 'positives',
    purityRandomPairs,
    purityRandomInit: random.purity,
    purityTrained,
    kmeansSeconds,
    n,
    k,
    d: random.dims,
    kmeansN,
    kmeansK,
    kmeansD,
  });
}
