/**
 * `densestream eval`: how good are a trained encoder's frozen features? The protocols of
 * docs/methods.md ("Evaluation"), each against a random-init encoder at equal settings
 * (`--checkpoint random`):
 *
 * | protocol | features | score |
 * |---|---|---|
 * | `knn` | pooled, cosine | top-1 of a weighted vote: k = 20, τ = 0.07 (solo-learn) and k = 200, τ = 0.1 (lightly) |
 * | `linear` | pooled, standardised | top-1 of logistic regression (Adam) |
 * | `dense` | the dense grid, standardised | per-class IoU and mIoU of a 1×1 linear classifier, logits upsampled to pixels |
 * | `masks` | the grid (`--masks encoder`) | mean IoU of foreground masks against the ground truth |
 *
 * Splits: for scenes, the probes train on the first `--train` images of `--data` (the images
 * `train` pre-trains on, as usual: the labels are new, the pixels are not) and are scored on
 * `--test` scenes of a held-out seed that no run trains on; for Fashion-MNIST, the train file
 * and the test file. `dense` and `masks` need per-pixel truth: the scenes' own, or Fashion-MNIST's
 * silhouettes (`fashionGroundTruth`: background, or the garment's class). `--split val` scores a
 * second held-out set instead (`VAL_SCENES_SEED` …), so options can be chosen on it and the test
 * set read once, for the report; its scores are filed apart in `eval.json`.
 *
 * Prints one JSON line and merges the results into `eval.json` of the run folder (or `--out`):
 * eval-file.ts. The protocols themselves, on features in memory, are eval-protocols.ts.
 */
import { FASHION_MNIST_CLASSES } from '../datasets/fashion-mnist.js';
import { SCENE_CLASSES } from '../datasets/scenes.js';
import { isRandomAccess, rangeSource, readSamples, splitSource, type RandomAccessSource, type Source } from '../datasets/source.js';
import { backendFields, backendLines, selectBackend } from '../models/backend.js';
import { readWholeImages, type LabelledImages } from '../train/whole-images.js';
import { loadCheckpointEncoder, randomInitEncoder, type CheckpointEncoder } from './checkpoint-encoder.js';
import { DEFAULT_RECIPE } from './recipe.js';
import { openSource } from './data-source.js';
import { ConfigError, toConfigError } from '../core/config-error.js';
import {
  FASHION_VAL_FROM,
  FOLDER_HELD_OUT,
  FOLDER_VAL,
  HELD_OUT_SCENES_SEED,
  isFashion,
  isScenes,
  VAL_SCENES_SEED,
  type EvalConfig,
  type Protocol,
} from './eval-options.js';
import { evaluationLine, readEvaluations, saveEvaluation } from './eval-file.js';
import {
  denseScores,
  embedImages,
  knnScores,
  linearScores,
  maskScores,
  type EvalResults,
  type Evaluation,
  type Features,
  type Split,
} from './eval-protocols.js';
import { prepareOutFolder } from './out-folder.js';

/**
 * The two splits of `--data`: the probes' train part, and the held-out part scored (`--split`):
 * scenes of another seed, Fashion-MNIST's test file (or the tail of its train file), or a seeded
 * share of a labelled folder; and the image classes' names.
 */
async function openSplits(c: EvalConfig): Promise<{ train: Source; test: Source; classes: readonly string[] }> {
  const val = c.split === 'val';
  // Whatever cannot be opened (a missing folder or file, a test file beside the training one) is the user's --data: exit 2.
  const open = (data: string, options?: Parameters<typeof openSource>[1]) => openSource(data, options).catch(toConfigError);
  if (isScenes(c.data)) {
    return {
      train: await open(c.data),
      test: await open(c.data, { scenes: { seed: val ? VAL_SCENES_SEED : HELD_OUT_SCENES_SEED } }),
      classes: SCENE_CLASSES,
    };
  }
  if (isFashion(c.data)) {
    const groundTruth = c.protocols.includes('dense') || c.protocols.includes('masks');
    const train = (await open(c.data, { groundTruth })) as RandomAccessSource; // Fashion-MNIST is read whole
    const test = val
      ? rangeSource(train, FASHION_VAL_FROM, train.size, `${train.name}, validation from ${FASHION_VAL_FROM}`)
      : await open(c.data.replace(/^fashion-mnist/, 'fashion-mnist-test'), { groundTruth });
    return { train, test, classes: FASHION_MNIST_CLASSES };
  }
  const all = (await open(c.data)) as Source & { classes?: readonly string[] };
  if (!isRandomAccess(all) || !all.classes) {
    throw new ConfigError(
      `--data ${c.data}: eval needs a labelled folder, one sub-folder per class (ImageFolder layout), with at least two classes`,
    );
  }
  const share = val ? FOLDER_VAL : 0;
  return {
    train: splitSource(all, 'train', FOLDER_HELD_OUT, c.seed, share),
    test: splitSource(all, val ? 'val' : 'test', FOLDER_HELD_OUT, c.seed, share),
    classes: all.classes,
  };
}

/** The first `limit` samples of `source` in index order as whole `size²` images (unreadable ones counted as skipped). */
export async function loadLabelledImages(source: Source, limit: number, size: number): Promise<LabelledImages> {
  let unreadable = 0;
  const images = await readWholeImages(
    readSamples(source, { shuffle: false, limit }, () => unreadable++),
    size,
    { purpose: 'evaluation needs labelled images' },
  );
  if (images.count === 0) throw new Error(`${source.name}: no readable labelled image among the first ${limit}`);
  return { ...images, skipped: images.skipped + unreadable };
}

const num = (r: EvalResults, key: string) => (r[key] as number).toFixed(3);

/** Runs the configured protocols; the caller has selected the backend. */
export async function runEvaluation(c: EvalConfig, log: (line: string) => void = () => {}): Promise<Evaluation> {
  const model: CheckpointEncoder =
    c.checkpoint === 'random'
      ? randomInitEncoder(c.encoder, c.seed, c.size ?? DEFAULT_RECIPE.size, c.init)
      : loadCheckpointEncoder(c.checkpoint);
  const { encoder } = model;
  const size = c.size ?? model.trainedSize;
  let t = performance.now();
  const took = () => {
    const now = performance.now();
    const seconds = ((now - t) / 1000).toFixed(1);
    t = now;
    return `${seconds} s`;
  };
  try {
    // The dense protocols score whole grid cells; kNN and the linear probe take any size (train
    // accepts any, e.g. Fashion-MNIST's 28 px on the slim encoder's stride 8).
    const onGrid = (p: Protocol) => p === 'dense' || (p === 'masks' && c.masks === 'encoder');
    if (!Number.isInteger(size / encoder.stride) && c.protocols.some(onGrid)) {
      const next = Math.ceil(size / encoder.stride) * encoder.stride;
      const left = c.protocols.filter(onGrid);
      if (c.protocolsGiven)
        throw new ConfigError(
          `--protocol ${left.join(',')}: scores whole cells of the encoder's grid, so --size must be a multiple of its stride ${encoder.stride}; ${size} is not (give --size ${next})`,
        );
      c = { ...c, protocols: c.protocols.filter((p) => !onGrid(p)) };
      log(
        `eval: ${left.join(' and ')} left out: ${size} px is not a multiple of the encoder's stride ${encoder.stride} (give --size ${next} to score them)`,
      );
    }
    if (encoder.config.kind === 'vit' && size !== encoder.config.imageSize)
      throw new ConfigError(`--size: the ViT's position embeddings fix its input at ${encoder.config.imageSize} px; drop --size ${size}`);
    const { train: trainSource, test: testSource, classes } = await openSplits(c);
    const wants = (p: Protocol) => c.protocols.includes(p);
    const pooled = wants('knn') || wants('linear');
    const denseTrain = wants('dense') ? c['dense-train'] : 0;
    const trainCount = Math.max(pooled ? c.train : 0, denseTrain);
    const trainImages = trainCount > 0 ? await loadLabelledImages(trainSource, trainCount, size) : undefined;
    const testImages = await loadLabelledImages(testSource, c.test, size);
    log(
      `eval: ${model.origin} on ${c.data}, ${trainImages?.count ?? 0} train and ${testImages.count} held-out images (${testSource.name}) at ${size} px`,
    );
    const trainFeatures = trainImages ? await embedImages(encoder, trainImages, denseTrain) : undefined;
    const gridFeatures = wants('dense') || (wants('masks') && c.masks === 'encoder');
    const test: Split = {
      images: testImages,
      features: await embedImages(encoder, testImages, gridFeatures ? testImages.count : 0),
      rows: testImages.count,
    };
    const split = (rows: number): Split => ({
      images: trainImages as LabelledImages,
      features: trainFeatures as Features,
      rows: Math.min(rows, (trainImages as LabelledImages).count),
    });
    const probe = { seed: c.seed, ...(c.epochs === undefined ? {} : { epochs: c.epochs }) };
    log(`eval: read and embedded in ${took()}`);

    const protocols: Evaluation['protocols'] = {};
    const record = (p: Protocol, train: Split | undefined, scores: EvalResults) => {
      protocols[p] = { ...scores, trainImages: train?.rows ?? 0, testImages: test.rows };
      return scores;
    };
    if (wants('knn')) {
      const r = record('knn', split(c.train), knnScores(split(c.train), test));
      log(`eval knn: k=20 ${num(r, 'knn20')}, k=200 ${num(r, 'knn200')}, ${took()}`);
    }
    if (wants('linear')) {
      const r = record('linear', split(c.train), await linearScores(split(c.train), test, { ...probe, classes: classes.length }));
      log(`eval linear: top-1 ${num(r, 'linear')} (final train loss ${num(r, 'linearTrainLoss')}), ${took()}`);
    }
    if (wants('dense')) {
      const r = record('dense', split(denseTrain), await denseScores(split(denseTrain), test, classes, probe));
      log(`eval dense: mIoU ${num(r, 'denseMIoU')}, pixel accuracy ${num(r, 'densePixelAccuracy')}, ${took()}`);
    }
    if (wants('masks')) {
      const r = record('masks', undefined, maskScores(test, c.masks, c.seed));
      log(`eval masks (${c.masks}): IoU ${num(r, 'maskIoU')} (all-foreground ${num(r, 'maskIoUAllForeground')}), ${took()}`);
    }
    return {
      model: { checkpoint: model.origin, step: model.step, encoder: model.encoderName, data: c.data, size, split: c.split },
      protocols,
      skipped: (trainImages?.skipped ?? 0) + testImages.skipped,
    };
  } finally {
    encoder.dispose();
  }
}

/** `densestream eval` with its options parsed (`parseEvalConfig`). */
export async function evalCommand(c: EvalConfig): Promise<void> {
  prepareOutFolder(c.out);
  const selection = await selectBackend(c.backend, c.threads === undefined ? {} : { threads: c.threads });
  const log = c.quiet ? () => {} : (line: string) => process.stderr.write(`${line}\n`);
  for (const line of backendLines(selection, c.verbose)) log(line);
  readEvaluations(c.out); // a file it could not add to stops the job now, not after the work
  const start = performance.now();
  const evaluation = await runEvaluation(c, log);
  const path = saveEvaluation(c.out, evaluation);
  log(`eval: wrote ${path}`);
  const seconds = Math.round((performance.now() - start) / 100) / 10;
  process.stdout.write(
    `${JSON.stringify({ eval: c.protocols.join(','), ...evaluationLine(evaluation), seconds, ...backendFields(selection) })}\n`,
  );
}
