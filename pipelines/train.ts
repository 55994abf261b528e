/**
 * `densestream train`: assembles the data plane (source → decode → multiView → batch, bounded
 * by a sample budget; `train-batches.ts`), a method, and the trainer with the hooks the options
 * ask for. The options come parsed and checked (`train-options.ts`).
 *
 * Hooks: `--method softrank`'s clustering positives (`positives/`: the data plane pairs each
 * anchor with a positive from its k-means cluster, the hook feeds the bank, checkpoints and
 * restores it; on a stream the positive comes from a reservoir of recent samples, not
 * checkpointed, so there a resume is not exact and says so); the kNN monitor
 * (`train/knn-monitor.ts`, `--knn-every`, logged as `knn` and summarised as `knnInit` /
 * `knnFinal`); the live attention copy (`--attention encoder`); and the caller's own.
 */
import { join } from 'node:path';
import { isRandomAccess, readSamples, type Source } from '../datasets/source.js';
import { createDenseCL } from '../methods/densecl.js';
import { createHapicl } from '../methods/hapicl.js';
import type { Method } from '../methods/method.js';
import { createMocoV2 } from '../methods/mocov2.js';
import { createSoftRank, type SoftRank, type SoftRankOptions } from '../methods/softrank.js';
import { backendFields, backendLines, selectBackend, type WasmKernelBuild } from '../models/backend.js';
import { encoderPreset } from '../models/encoder-spec.js';
import { assignSaved, readSaved, takeTensors } from '../models/weights-io.js';
import type { AttentionSource } from '../operators/attention-map.js';
import type { AugmentPath } from '../operators/augment-path.js';
import { PixelWorkers } from '../operators/pixel-workers.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { ConfigError, toConfigError } from '../core/config-error.js';
import { openSkipLog, skipSummary } from '../sinks/skip-log.js';
import { closeHooks, type TrainerHook } from '../core/trainer-hook.js';
import { createKnnMonitor, KNN_K, KNN_TAU, knnMonitorHook, loadKnnSet, type KnnMonitor, type KnnReadings } from '../train/knn-monitor.js';
import type { PositiveStats } from '../positives/pair-counts.js';
import { trainLoop, type CheckpointMeta, type TrainResult } from '../train/trainer.js';
import { openAttentionSource } from './attention-source.js';
import { attentionRefreshHook, liveEncoderAttention, openEncoderAttention, type EncoderMaps } from './encoder-attention.js';
import { openSource } from './data-source.js';
import { pixelWorkerCount, tarOptionsOf } from './shared-options.js';
import { prepareOutFolder } from './out-folder.js';
import { checkRunFolder, encoderRunOf, removeRunFiles } from './run-folder.js';
import { chooseViewAugment, mapsOnWorkers } from './sample-views.js';
import { checkSavedPositives, openPositives, positiveSettings, type RunPositives } from '../positives/run-positives.js';
import { sourceSamplesPerBatch, trainBatches, trainViewOptions } from './train-batches.js';
import { defaultKnnData, viewMasks } from './train-options.js';
import type { TrainConfig } from './train-schema.js';

/** `--epochs E` as steps: E passes over a finite source (softrank reads B/2 source samples a step). */
function stepsForEpochs(c: TrainConfig, source: Source, epochs: number): number {
  if (!isRandomAccess(source) || !Number.isFinite(source.size))
    throw new ConfigError(`--epochs: ${source.name} has no known length; give --steps`);
  const perStep = c.method === 'softrank' ? c.batch / 2 : c.batch;
  return Math.max(1, Math.floor((epochs * source.size) / perStep)); // whole batches only: the last partial one is dropped
}

/**
 * The method of `c`, and for softrank the method again as the `SoftRank` its positives read
 * target embeddings from; softrank draws its negatives from `negatives` (the run's `Reclustering`).
 */
export function createMethod(c: TrainConfig, negatives: SoftRankOptions['negatives']): { method: Method; softrank?: SoftRank } {
  // a checkpoint from before --init holds none, and the models' default draw is what drew it (its weights are loaded anyway)
  const common = {
    encoder: encoderPreset(c.encoder, c.size),
    seed: c.seed,
    init: c.init,
    queueSize: c.queue,
    alignWeight: c['align-weight'],
  };
  switch (c.method) {
    case 'mocov2':
      return { method: createMocoV2(common) };
    case 'densecl':
      // 0, or a checkpoint from before --dense-cells (none: it trained on every cell, and goes on so): every cell.
      return {
        method: createDenseCL({
          ...common,
          match: c.match,
          ...(c['dense-cells'] ? { denseCells: c['dense-cells'] } : {}),
          ...(c['dense-queue'] ? { denseQueueSize: c['dense-queue'] } : {}), // 0, or none in an older checkpoint: as --queue
          ...(c['dense-hidden'] ? { denseHidden: c['dense-hidden'] } : {}), // 0, or none in an older checkpoint: as the global head's
          denseWarmup: c['dense-warmup'], // none in an older checkpoint: it had no warm-up (the method's default)
        }),
      };
    case 'hapicl':
      // 0, or a checkpoint from before --pixel-cells (none: it trained on every cell, and goes on so): every cell.
      return {
        method: createHapicl({
          ...common,
          alpha: c.alpha,
          beta: c.beta,
          ...(c['pixel-cells'] ? { pixelCells: c['pixel-cells'] } : {}),
          ...(c['dense-hidden'] ? { denseHidden: c['dense-hidden'] } : {}), // 0, or none in an older checkpoint: as the global head's
        }),
      };
    case 'softrank': {
      // A checkpoint from before --relation holds none: it trained within one view, and goes on so.
      const relation = (c.relation as TrainConfig['relation'] | undefined) ?? 'within';
      const softrank = createSoftRank({ ...common, alpha: c.alpha, beta: c.beta, frozenTargets: true, negatives, relation });
      return { method: softrank, softrank };
    }
  }
}

/**
 * The kNN monitor of `method`: the first `--knn-size` samples of its labelled set (index order),
 * whole images at `--size`. A set that cannot be read or has no labels stops the job before training.
 */
async function openKnnMonitor(c: TrainConfig, method: Method): Promise<KnnMonitor> {
  const data = c['knn-data'] ?? defaultKnnData(c.data) ?? c.data;
  try {
    const source = await openSource(data, {}, '--knn-data');
    const set = await loadKnnSet(readSamples(source, { shuffle: false, limit: c['knn-size'] }), { size: c.size, seed: c.seed });
    process.stderr.write(
      `knn monitor: ${set.references} references and ${set.queries} queries of ${source.name}${set.skipped ? ` (${set.skipped} unreadable, left out)` : ''}, k = ${KNN_K}, τ = ${KNN_TAU}, every ${c['knn-every']} steps\n`,
    );
    return createKnnMonitor({ method, set });
  } catch (err) {
    const flag = c['knn-data'] === undefined ? `--knn-every (monitor set: --data ${data})` : `--knn-data ${data}`;
    throw new ConfigError(`${flag}: ${err instanceof Error ? err.message : String(err)} (--knn-every 0 turns the monitor off)`);
  }
}

export interface RunOptions {
  /** Continue from `config.out`/checkpoint: its weights, queues, optimiser slots and step. */
  resume?: boolean;
  /** A new run into a folder that holds one replaces it (its run files only, {@link checkRunFolder}); without it, such a folder is refused. */
  overwrite?: boolean;
  /** Also print why each backend before the one taken was passed over. */
  verbose?: boolean;
  /** The caller's hooks (a progress line, Ctrl-C), after the run's own. */
  hooks?: readonly TrainerHook[];
}

export type TrainingResult = TrainResult & {
  backend: string;
  /** The build of densestream's wasm kernels that ran, on wasm with the kernels on. */
  kernelBuild?: WasmKernelBuild;
  augment: AugmentPath;
  positives?: PositiveStats;
  knnInit?: number;
  knnFinal?: number;
  knnQueries?: number;
};

/** Where the views are cut by attention (`--attention`), and the hook that keeps a live encoder's up to date or frees it. */
async function openAttention(
  c: TrainConfig,
  method: Method,
): Promise<{ attention?: AttentionSource; featureMask?: EncoderMaps['mask']; hook?: TrainerHook }> {
  if (c.attention === 'encoder') {
    const live = liveEncoderAttention(method.checkpointState(), encoderPreset(c.encoder, c.size), c.size, c.seed);
    return { attention: live.source, featureMask: live.mask, hook: attentionRefreshHook(live, c['attention-refresh'] ?? 50) };
  }
  const run = encoderRunOf(c.attention);
  if (run !== undefined) {
    const maps = openEncoderAttention(run, '--attention', c.seed);
    return { attention: maps.source, featureMask: maps.mask, hook: { close: () => maps.dispose() } };
  }
  return c.attention === undefined
    ? {}
    : { attention: await openAttentionSource(c.attention, '--attention', c['saliency-size']).catch(toConfigError) };
}

/**
 * Trains per `config`. Every random choice is keyed by (seed, epoch, id, view), so the data
 * after step n is fully determined by the position n × batch: a resumed run sees exactly the
 * batches the uninterrupted one would (as long as no input was skipped as unreadable, and no remote
 * shard passed over with --on-missing-shard skip: either moves the later positions).
 */
export async function runTraining(c: TrainConfig, options: RunOptions = {}): Promise<TrainingResult> {
  prepareOutFolder(c.out);
  // A folder holding a run is refused first; with --overwrite, that run is removed only after
  // every opener below has held (data, positives, kNN monitor, attention), so a refused run loses nothing.
  const previous = options.resume ? [] : checkRunFolder(c.out, options.overwrite === true);
  // A source that cannot be opened is a wrong --data (exit 2), as precompute and export refuse it.
  // `--masks gt` reads the ground truth: the scenes always carry theirs, Fashion-MNIST derives its silhouettes when asked.
  const source = await openSource(c.data, { tar: tarOptionsOf(c), groundTruth: viewMasks(c) === 'gt' }).catch(toConfigError);
  const selection = await selectBackend(c.backend, c.threads === undefined ? {} : { threads: c.threads });
  for (const line of backendLines(selection, options.verbose === true)) process.stderr.write(`${line}\n`);
  if (c.epochs !== undefined) c = { ...c, steps: stepsForEpochs(c, source, c.epochs) };
  const settings = c.method === 'softrank' ? positiveSettings(c, source) : undefined;
  const checkpointDir = join(c.out, 'checkpoint');
  // Checked before any weight is read: a checkpoint whose bank does not fit is refused as a wrong option.
  const savedPositives = options.resume && settings ? checkSavedPositives(c, settings, checkpointDir) : undefined;
  let positives: RunPositives | undefined;
  const { method, softrank } = createMethod(c, (ids, z, dims) => positives?.reclustering.negatives(ids, z, dims));
  const hooks: TrainerHook[] = [];
  let workers: PixelWorkers | undefined;
  try {
    let startStep = 0;
    let optimizerState: ReturnType<typeof takeTensors> | undefined;
    if (options.resume) {
      const saved = readSaved(checkpointDir); // read and decoded once
      assignSaved(method.checkpointState(), saved);
      startStep = (saved.meta as CheckpointMeta).step;
      optimizerState = takeTensors(saved, 'optimizer/'); // frees the rest; the trainer frees these
    }
    // A resumed run keeps the path its checkpoint recorded: `auto` is resolved once, at the start,
    // and stored in the config, so the resumed batches are cut exactly as the uninterrupted run's.
    // A checkpoint from before --augment existed cut its views on the CPU.
    const saved: AugmentPath = c.augment === 'backend' ? 'backend' : 'cpu';
    const augment = options.resume
      ? { path: saved, reason: `augment: ${saved} (the run's, from its checkpoint)` }
      : 'precomputed' in source
        ? { path: 'cpu' as const, reason: '' }
        : await chooseViewAugment(c.augment, source, trainViewOptions(c)); // before softrank's positives, whose anchors are cut on the same path
    if (augment.reason) process.stderr.write(`${augment.reason}\n`); // precomputed views: nothing to cut, nothing to say
    c = { ...c, augment: augment.path };
    const skipped = openSkipLog(join(c.out, 'skipped.jsonl'));
    const perBatch = sourceSamplesPerBatch(c);
    // Room for the batch being trained on, the next one being collated, and decodes in flight.
    const budget = new SampleBudget(3 * perBatch + 16);
    if (settings && softrank) {
      const onWarning = (line: string) => process.stderr.write(`${line}\n`);
      positives = openPositives(c, source, softrank, {
        settings,
        startStep,
        budget,
        perBatch,
        onWarning,
        augment: augment.path,
        ...(savedPositives ? { saved: savedPositives } : {}),
      });
      hooks.push(positives.hook);
    }
    const knnEvery = c['knn-every'] ?? 0; // checkpoints from before the monitor have no knn-every
    let knn: KnnReadings | undefined;
    if (knnEvery > 0) {
      const hook = knnMonitorHook(await openKnnMonitor(c, method), knnEvery, (accuracy, seconds) =>
        process.stderr.write(`knn at init ${accuracy.toFixed(3)} (${seconds.toFixed(1)} s per evaluation)\n`),
      );
      knn = hook.readings;
      hooks.push(hook);
    }
    const { attention, featureMask, hook: attentionHook } = await openAttention(c, method);
    if (attentionHook) hooks.push(attentionHook);
    // Pixel workers, where this run has work for them: saliency maps to compute on views cut live.
    const count = pixelWorkerCount(c.workers);
    if (count > 0 && !('precomputed' in source) && mapsOnWorkers(trainViewOptions(c, attention, featureMask)))
      workers = new PixelWorkers(count);
    if (previous.length > 0) {
      removeRunFiles(c.out, previous); // the skip log opens on its first record, which comes later
      process.stderr.write(`--overwrite: removed the previous run's ${previous.join(', ')} from ${c.out}\n`);
    }
    const batches = trainBatches(c, source, budget, (r) => skipped.record(r), {
      startStep,
      ...(positives ? { positives } : {}),
      ...(attention ? { attention } : {}),
      ...(featureMask ? { featureMask } : {}),
      augment: augment.path,
      ...(workers ? { workers } : {}),
    });
    const result = await trainLoop(method, batches, budget, {
      steps: c.steps,
      learningRate: c.lr,
      warmupSteps: Math.min(c.warmup, c.steps),
      weightDecay: c['weight-decay'],
      optimizer: c.optimizer,
      logEvery: c['log-every'],
      checkpointEvery: c['checkpoint-every'],
      outDir: c.out,
      config: c,
      startStep,
      optimizerState,
      hooks: [...hooks, ...(options.hooks ?? [])],
    });
    positives?.reclustering.close(); // a clustering still running is stopped before the stats are read (its hook's close, later, is then a no-op)
    const n = await skipped.close();
    if (n + skipped.notes + skipped.retries > 0) process.stderr.write(`${skipSummary(source.name, n, skipped)}\n`);
    return {
      ...result,
      ...backendFields(selection),
      augment: augment.path,
      ...(positives ? { positives: positiveStats(positives) } : {}),
      ...(knn ? { knnInit: knn.init, knnFinal: knn.final, knnQueries: knn.queries } : {}),
    };
  } finally {
    closeHooks(hooks);
    await workers?.close();
    method.dispose();
  }
}

/** The run's positive statistics, a stream's reservoir included. */
function positiveStats(p: RunPositives): PositiveStats {
  const stats = p.reclustering.stats();
  return p.reservoir ? { ...stats, reservoir: { capacity: p.reservoir.capacity, held: p.reservoir.size } } : stats;
}
