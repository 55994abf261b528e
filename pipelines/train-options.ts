/**
 * `densestream train`'s options parsed (declared in train-schema.ts): flags over the `--config`
 * JSON file over the defaults, a resumed run's configuration from its checkpoint, and the checks
 * across options (those of one method in train-method-options.ts), all decided before any work.
 * It loads no tfjs, sharp or data code, so a wrong option is refused at once; `train.ts` runs
 * what this accepts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../core/config-error.js';
import { readWeightsMeta } from '../models/weights-manifest.js';
import { SALIENCY_SIZE } from '../operators/saliency.js';
import type { CheckpointMeta } from '../train/trainer.js';
import { parseCommand } from './command-schema.js';
import { DEFAULT_RECIPE } from './recipe.js';
import { checkpointDir, encoderRunOf } from './run-folder.js';
import { checkRemoteShardOptions, REMOTE_SHARD_OPTIONS, settleSaliencySize, usesSaliency, type ViewMasks } from './shared-options.js';
import { checkSoftRankOptions, settleDenseOptions } from './train-method-options.js';
import { TRAIN_COMMAND, type TrainConfig } from './train-schema.js';

/**
 * Flags over the config file over the defaults; every value checked, nothing run yet. With
 * `--resume`, the configuration is the checkpoint's: besides `--out` and `--steps`, only the flags
 * that say how this machine reads (threads, workers, the remote-shard settings, `--verbose`) may be given.
 */
export function parseTrainConfig(
  argv: readonly string[],
): TrainConfig & { resume: boolean; overwrite: boolean; verbose: boolean; stepsDone?: number } {
  const { values, given } = parseCommand(TRAIN_COMMAND, argv);
  const { resume, overwrite, verbose, ...options } = values;
  if (resume) {
    if (overwrite) throw new ConfigError('--resume continues the run in --out and --overwrite replaces it; give one');
    // How this machine reads (threads, workers, the remote-shard settings) may change on a resume; what the run is may not.
    const local = ['resume', 'out', 'steps', 'verbose', 'threads', 'workers', ...Object.keys(REMOTE_SHARD_OPTIONS)];
    const others = [...given].filter((k) => !local.includes(k));
    if (others.length > 0)
      throw new ConfigError(
        `--resume takes the configuration from the checkpoint (only --steps may extend it); drop --${others.join(', --')}`,
      );
    const out = options.out ?? join('runs', DEFAULT_RECIPE.method);
    const dir = join(out, 'checkpoint');
    if (!existsSync(join(dir, 'weights.json'))) throw new ConfigError(`--resume: no checkpoint in ${dir}`);
    const meta = readWeightsMeta(dir) as CheckpointMeta;
    const config = { ...(meta.config as TrainConfig), out };
    // How many cores to use is this machine's business, not the run's; the checkpoint's count
    // stays unless given, as another count sums in another order and a resume is exact.
    if (given.has('threads')) config.threads = options.threads;
    // Pixel workers do not change a value: this invocation's count, given or by default.
    if (options.workers === undefined) delete config.workers;
    else config.workers = options.workers;
    for (const k of Object.keys(REMOTE_SHARD_OPTIONS) as Array<keyof typeof REMOTE_SHARD_OPTIONS>) {
      if (given.has(k)) Object.assign(config, { [k]: options[k] });
    }
    checkRemoteShardOptions(config, given);
    // A checkpoint from before --saliency-size made its maps at 64 px, whatever its views' size.
    if (
      config['saliency-size'] === undefined &&
      !config.data.startsWith('parquet:') &&
      usesSaliency(viewMasks(config), config['attention-view'], config.attention)
    )
      config['saliency-size'] = SALIENCY_SIZE;
    if (given.has('steps')) {
      // Extends the run: the cosine schedule is re-planned to end at the new step count, from the step the checkpoint holds.
      if (options.steps <= meta.step)
        throw new ConfigError(
          `--steps ${options.steps}: the run in ${out} has done ${meta.step} steps; --resume --steps extends it to more`,
        );
      config.steps = options.steps;
      config.epochs = undefined; // the new length is in steps
    }
    return { ...config, resume: true, overwrite: false, verbose, stepsDone: meta.step };
  }
  const c: TrainConfig = { ...options, out: options.out ?? join('runs', options.method) };
  // Adam's steps are normalised: SGD's default rate would blow it up. Keep an explicit --lr.
  if (c.optimizer === 'adamw' && !given.has('lr')) c.lr = 1e-3;
  // LARS: the linear scaling rule lr = 0.3 × batch / 256 (SimCLR, solo-learn); its trust ratio sets each layer's step.
  if (c.optimizer === 'lars' && !given.has('lr')) c.lr = (0.3 * c.batch) / 256;
  checkSoftRankOptions(c, given);
  checkRemoteShardOptions(c, given);
  if (given.has('epochs') && given.has('steps')) throw new ConfigError("--epochs and --steps both set the run's length; give one");
  if (c.encoder === 'vit') {
    if (c.preset === 'multicrop')
      throw new ConfigError(
        '--encoder vit: its position embeddings fix the view size, and multicrop mixes sizes; use --preset mocov2 or byol',
      );
    if (c.size % 8 !== 0) throw new ConfigError(`--encoder vit: --size ${c.size} must be a multiple of its patch, 8`);
  }
  if (c.method === 'hapicl' && c.masks === 'encoder' && !(c.attention === 'encoder' || c.attention?.startsWith('encoder:'))) {
    throw new ConfigError('--masks encoder: clusters the features of --attention encoder (the live encoder) or encoder:RUN; give one');
  }
  // A missing run is refused with the other options, before a backend starts or --out is touched.
  const attentionRun = encoderRunOf(c.attention);
  if (attentionRun !== undefined) checkpointDir(attentionRun, '--attention');
  if (given.has('attention-refresh') && c.attention !== 'encoder')
    throw new ConfigError('--attention-refresh: only --attention encoder (the live encoder) is refreshed');
  // A step pushes its batch's keys into each queue at once, so a queue must hold a batch.
  if (c.method !== 'softrank' && c.queue < c.batch)
    throw new ConfigError(`--queue ${c.queue}: a step's ${c.batch} keys go into the queue at once; give --queue ${c.batch} or more`);
  settleDenseOptions(c, given);
  const precomputed = c.data.startsWith('parquet:');
  c['saliency-size'] = settleSaliencySize(c['saliency-size'], given, {
    size: c.size,
    uses: !precomputed && usesSaliency(viewMasks(c), c['attention-view'], c.attention),
    nowhere: precomputed
      ? `--data ${c.data} holds views precompute cut, with their masks (precompute --saliency-size sizes those maps)`
      : 'this run makes no saliency map (it makes them for --method hapicl with --masks saliency, or for --attention-view, with a saliency --attention)',
  });
  for (const k of ['alpha', 'beta'] as const) {
    if (given.has(k) && c.method !== 'hapicl' && c.method !== 'softrank')
      throw new ConfigError(`--${k}: a weight of hapicl's HARL loss or of softrank's two rankings; drop it with --method ${c.method}`);
  }
  if (c.method === 'softrank' && c.alpha === 0 && c.beta === 0)
    throw new ConfigError('--alpha 0 --beta 0: softrank would have no loss; give one of its two rankings a weight above 0');
  checkKnnOptions(c, given);
  if (given.has('augment') && c.data.startsWith('parquet:'))
    throw new ConfigError(`--augment: --data ${c.data} holds views cut by precompute; there is nothing to cut, drop --augment`);
  return { ...c, resume: false, overwrite, verbose };
}

/** The masks a run's views carry: hapicl's, or none. */
export const viewMasks = (c: Pick<TrainConfig, 'method' | 'masks'>): ViewMasks => (c.method === 'hapicl' ? c.masks : 'none');

/** The kNN monitor's labelled set by default: the training scenes, or Fashion-MNIST's test split; other sources have no labels. */
export function defaultKnnData(data: string): string | undefined {
  if (data === 'scenes' || data.startsWith('scenes:') || data === 'fashion-mnist-test' || data.startsWith('fashion-mnist-test:'))
    return data;
  if (data === 'fashion-mnist' || data.startsWith('fashion-mnist:')) return `fashion-mnist-test${data.slice('fashion-mnist'.length)}`;
  return undefined;
}

/**
 * The kNN monitor is on by default where a labelled set is at hand and the run lasts at least
 * one interval; asked for without a labelled set, it is refused.
 */
function checkKnnOptions(c: TrainConfig, given: ReadonlySet<string>): void {
  const data = c['knn-data'] ?? defaultKnnData(c.data);
  if (data?.startsWith('parquet:'))
    throw new ConfigError(
      `--knn-data ${data}: the kNN monitor needs whole labelled images (scenes, fashion-mnist-test, dir:PATH or tar:PATTERN with labels), not precomputed views`,
    );
  if (c['knn-every'] > 0 && data === undefined) {
    if (given.has('knn-every'))
      throw new ConfigError(
        `--knn-every: --data ${c.data} has no labels for the kNN monitor; name a labelled set with --knn-data (e.g. scenes, fashion-mnist-test), or drop --knn-every`,
      );
    c['knn-every'] = 0; // no labelled set: the monitor is off
  }
  // By default a run shorter than one interval has no monitor: an evaluation would cost more than it tells.
  if (!given.has('knn-every') && c.steps < c['knn-every']) c['knn-every'] = 0;
}
