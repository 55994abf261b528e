/**
 * `densestream train`: assembles the data plane (source → decode → multiView → batch, bounded
 * by a sample budget), a method and the trainer. Every option is a flag and a key of the JSON
 * `--config` file; both are checked against one table before any work.
 *
 * `--method softrank` adds clustering positives: the data plane pairs each anchor with a
 * positive drawn from its k-means cluster (`positivePairs`, before `multiView`), and after each
 * step the trainer feeds the target embeddings to an embedding bank that is re-clustered in a
 * worker every `--recluster-every` steps (`Reclustering`, set up in `softrank-positives.ts`,
 * which also puts the bank and clusterings in every checkpoint so that `--resume` is exact).
 * On a stream (`tar:`), which cannot read a positive again by id, the positive comes from a
 * bounded reservoir of recent decoded anchors (`reservoirPairs`, `--reservoir`); the reservoir is
 * not checkpointed, so there a resume restarts it empty, says so, and is not exact.
 *
 * The kNN monitor (`train/knn-monitor.ts`) embeds a small labelled set (`--knn-data`, by default
 * the scenes trained on or Fashion-MNIST's test split) at random init and every `--knn-every`
 * steps; its accuracy is logged as `knn` and summarised as `knnInit` / `knnFinal`.
 */
import { join } from 'node:path';
import { concat, defer, EMPTY, tap, throwError, type Observable, type OperatorFunction } from 'rxjs';
import { isRandomAccess, readSamples, recordingOnce, skippingKnownBad, type Source } from '../datasets/source.js';
import { createDenseCL } from '../methods/densecl.js';
import { createHapicl } from '../methods/hapicl.js';
import type { Method } from '../methods/method.js';
import { createMocoV2 } from '../methods/mocov2.js';
import { createSoftRank, type SoftRank, type SoftRankOptions } from '../methods/softrank.js';
import { backendLines, selectBackend } from '../models/backend.js';
import { encoderPreset, encoderStride } from '../models/encoder-spec.js';
import { assignSaved, readSaved, takeTensors } from '../models/weights-io.js';
import type { AugmentPath } from '../operators/augment-path.js';
import { batch } from '../operators/batch.js';
import type { Batch } from '../core/batch.js';
import type { Sample, SkipRecord } from '../core/index.js';
import { fromSource } from '../operators/from-source.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { openSkipLog, skipSummary } from '../sinks/skip-log.js';
import type { PositiveStats } from '../train/recluster.js';
import { createKnnMonitor, KNN_K, KNN_TAU, loadKnnSet, type KnnMonitor } from '../train/knn-monitor.js';
import { trainLoop, type CheckpointMeta, type MetricsRecord, type TrainResult } from '../train/trainer.js';
import { openSource } from './data-source.js';
import { prepareOutFolder } from './out-folder.js';
import { claimRunFolder } from './run-folder.js';
import { openAttentionSource } from './attention-source.js';
import { liveEncoderAttention, openEncoderAttention, type EncoderMaps } from './encoder-attention.js';
import type { AttentionSource } from '../operators/attention-map.js';
import type { PrecomputedViews } from '../datasets/parquet-views.js';
import { decodeViews } from '../operators/decode-views.js';
import { positivePairs, readableById } from './positive-pairs.js';
import { checkSavedPositives, openPositives, positiveSettings, type PositiveSampling } from './softrank-positives.js';
import { reservoirPairs } from './reservoir-pairs.js';
import { PositiveReservoir } from '../operators/clustering/index.js';
import type { ClusterIndex } from '../operators/cluster-positives.js';
import { chooseViewAugment, decodeWithMasks, sampleViews, type SampleViewOptions } from './sample-views.js';
import { ConfigError, toConfigError } from '../core/config-error.js';
import { defaultKnnData, type TrainConfig } from './train-options.js';

/** `--epochs E` as steps: E passes over a finite source (softrank reads B/2 source samples a step). */
function stepsForEpochs(c: TrainConfig, source: Source, epochs: number): number {
  if (!isRandomAccess(source) || !Number.isFinite(source.size))
    throw new ConfigError(`--epochs: ${source.name} has no known length; give --steps`);
  const perStep = c.method === 'softrank' ? c.batch / 2 : c.batch;
  return Math.max(1, Math.floor((epochs * source.size) / perStep)); // whole batches only: the last partial one is dropped
}

/** The method of `c`; softrank's draws its negatives from `negatives` (the run's `Reclustering`). */
function createMethod(c: TrainConfig, negatives?: SoftRankOptions['negatives']): Method {
  const common = { encoder: encoderPreset(c.encoder, c.size), seed: c.seed, queueSize: c.queue, alignWeight: c['align-weight'] };
  switch (c.method) {
    case 'mocov2':
      return createMocoV2(common);
    case 'densecl':
      return createDenseCL({ ...common, match: c.match });
    case 'hapicl':
      return createHapicl(common);
    case 'softrank':
      return createSoftRank({ ...common, frozenTargets: true, ...(negatives ? { negatives } : {}) });
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

const isSoftRank = (m: Method): m is SoftRank => m.name === 'softrank' && 'targetEmbeddings' in m;

/** Training from `precompute` shards: the views must be the ones this configuration asks for. */
function checkPrecomputed(c: TrainConfig, p: PrecomputedViews): void {
  const differ: string[] = [];
  if (p.size !== c.size) differ.push(`--size ${c.size} (the views are ${p.size} px)`);
  if (p.preset !== c.preset) differ.push(`--preset ${c.preset} (the views are ${p.preset})`);
  if (p.attentionView !== c['attention-view'])
    differ.push(`--attention-view ${c['attention-view']} (the views were cut with ${p.attentionView})`);
  if (c.method === 'hapicl' && p.masks === 'none') differ.push('--method hapicl needs masks (precompute with --masks saliency|kmeans|gt)');
  const minForeground = c.method === 'hapicl' ? (c['min-foreground'] ?? 0) : 0;
  if (p.minForeground !== minForeground) {
    differ.push(
      c.method === 'hapicl'
        ? `--min-foreground ${minForeground} (the views were cut with ${p.minForeground})`
        : `--method ${c.method} cuts plain crops (the views were cut keeping ${p.minForeground} of each crop on the mask; precompute with --min-foreground 0)`,
    );
  }
  if (differ.length > 0) throw new ConfigError(`--data ${c.data}: precomputed views do not fit: ${differ.join('; ')}`);
}

/** The data plane's view options of a run (the pixels' path aside). */
function trainViewOptions(c: TrainConfig, attention?: AttentionSource, featureMask?: EncoderMaps['mask']): SampleViewOptions {
  return {
    size: c.size,
    preset: c.preset,
    attentionView: c['attention-view'],
    masks: c.method === 'hapicl' ? c.masks : 'none',
    minForeground: c.method === 'hapicl' ? (c['min-foreground'] ?? 0) : 0,
    seed: c.seed,
    ...(attention ? { attention } : {}),
    ...(featureMask ? { featureMask } : {}),
  };
}

/** Samples the source reads per batch: all of them, or for softrank's pairs the anchors only (positives are read again by id, or come from a stream's reservoir). */
const sourceSamplesPerBatch = (c: TrainConfig): number => (c.method === 'softrank' ? c.batch / 2 : c.batch);

/**
 * The batches a run trains on from step `startStep`: each epoch's samples in seeded order,
 * cut into views live (decode → masks → multiView) or, for `parquet:DIR`, the precomputed
 * views of that epoch. Samples hold a permit of `budget` until the trainer releases them.
 *
 * softrank: each decoded anchor is followed by its positive (`positivePairs`) before the views
 * are cut, so a batch of `c.batch` samples holds `c.batch / 2` pairs and `c.batch / 2` permits
 * (the positives take none). Positives come from `positives`' clusterings (and its source
 * reads, remembered to read positives again by id; for a stream, from its reservoir of recent
 * samples, `reservoirPairs`); without it, every anchor is its own positive.
 */
export function trainBatches(
  c: TrainConfig,
  source: Source,
  budget: SampleBudget,
  record: (r: SkipRecord) => void,
  startStep = 0,
  positives?: PositiveSampling,
  attention?: AttentionSource,
  featureMask?: EncoderMaps['mask'],
  augment: AugmentPath = 'cpu',
): Observable<Batch> {
  const viewOptions: SampleViewOptions = { ...trainViewOptions(c, attention, featureMask), augment };
  const perEpoch = isRandomAccess(source) && Number.isFinite(source.size) ? source.size : Infinity;
  const perBatch = sourceSamplesPerBatch(c);
  const position = startStep * perBatch;
  const firstEpoch = Number.isFinite(perEpoch) ? Math.floor(position / perEpoch) : 0;
  const firstSkip = Number.isFinite(perEpoch) ? position % perEpoch : position;
  const precomputed = 'precomputed' in source ? (source.precomputed as PrecomputedViews) : undefined;
  if (precomputed) checkPrecomputed(c, precomputed);
  // An input that cannot be read or decoded is recorded once and not read again in later epochs.
  const bad = new Set<string>();
  record = recordingOnce(record, bad);
  const dropped = (r: SkipRecord) => {
    record(r);
    budget.release();
  };
  let read = skippingKnownBad(source, bad);
  let beforeViews: ((epoch: number) => OperatorFunction<Sample, Sample>) | undefined;
  if (c.method === 'softrank' && precomputed)
    throw new ConfigError(`--data ${c.data}: softrank pairs anchors before the views are cut; it needs images, not precomputed views`);
  if (c.method === 'softrank' && !isRandomAccess(source)) {
    const reclustering = positives?.reclustering;
    const reservoir = positives?.reservoir ?? new PositiveReservoir(c.reservoir ?? 1); // no clustering: every anchor is its own positive
    const nextAnchor = reclustering ? () => reclustering.nextAnchor() : () => ({ batch: 0, clustering: Promise.resolve(undefined) });
    const embed = reclustering ? (samples: readonly Sample[], index: ClusterIndex) => reclustering.embedNew(samples, index) : undefined;
    const onNote = (_id: string, reason: string) => reclustering?.noteSelf(reason);
    const onCluster = (batch: number, id: string, cluster: number) => reclustering?.notePairCluster(batch, id, cluster);
    beforeViews = (epoch) =>
      reservoirPairs({ nextAnchor, groupSize: perBatch, reservoir, seed: c.seed, epoch, onNote, onCluster, ...(embed ? { embed } : {}) });
  } else if (c.method === 'softrank' && isRandomAccess(read)) {
    const reclustering = positives?.reclustering;
    const byId = positives?.byId ?? readableById(read, 0); // no clustering: every anchor is its own positive, nothing is read again
    read = byId.source;
    const prepare = decodeWithMasks(viewOptions, record);
    const fetch = async (id: string) => prepare(await byId.readById(id));
    const onNote = (id: string, reason: string) => {
      reclustering?.noteSelf(reason);
      if (reason.startsWith('fetch failed')) record({ id, stage: 'positive', reason });
    };
    const nextAnchor = reclustering ? () => reclustering.nextAnchor() : () => ({ batch: 0, clustering: Promise.resolve(undefined) });
    const embed = reclustering ? (anchors: readonly Sample[], index: ClusterIndex) => reclustering.embedNew(anchors, index) : undefined;
    const onCluster = (batch: number, id: string, cluster: number) => reclustering?.notePairCluster(batch, id, cluster);
    beforeViews = (epoch) =>
      positivePairs({ nextAnchor, groupSize: perBatch, fetch, seed: c.seed, epoch, onNote, onCluster, ...(embed ? { embed } : {}) });
  }
  const views = (epoch: number) =>
    precomputed
      ? decodeViews({ perEpoch: precomputed.viewsPerEpoch, epoch, onSkip: dropped })
      : sampleViews(viewOptions, [epoch], dropped, record, beforeViews?.(epoch));
  const pass = (epoch: number): Observable<Sample> => {
    let cut = 0;
    return concat(
      fromSource(readSamples(read, { seed: c.seed, epoch, skip: epoch === firstEpoch ? firstSkip : 0 }, record), budget).pipe(
        views(epoch),
        tap(() => {
          cut++;
        }),
      ),
      // A pass that yields nothing would repeat forever (and, before this check, trained 0 steps and wrote a random-init checkpoint).
      defer(() =>
        cut > 0
          ? EMPTY
          : throwError(
              () =>
                new Error(
                  `--data ${c.data}: no sample of ${epoch === firstEpoch ? 'the first pass' : `epoch ${epoch}`} could be read and decoded (${bad.size} unreadable); see ${join(c.out, 'skipped.jsonl')} for why`,
                ),
            ),
      ),
    );
  };
  // A finite source is read pass after pass until the trainer has its steps (not a count of
  // passes fixed in advance: unreadable inputs make passes shorter); a stream is read once.
  const passes = (epoch: number): Observable<Sample> =>
    concat(pass(epoch), Number.isFinite(perEpoch) ? defer(() => passes(epoch + 1)) : EMPTY);
  return passes(firstEpoch).pipe(
    batch(c.batch, {
      keepLast: false,
      ...(c.method === 'densecl' && c.match === 'geometric'
        ? { geometricGrid: c.size / encoderStride(encoderPreset(c.encoder, c.size)) }
        : {}),
    }),
  );
}

export interface RunOptions {
  /** Continue from `config.out`/checkpoint: its weights, queues, optimiser slots and step. */
  resume?: boolean;
  /** A new run into a folder that holds one replaces it (its run files only, {@link claimRunFolder}); without it, such a folder is refused. */
  overwrite?: boolean;
  onLog?: (record: MetricsRecord) => void;
  shouldStop?: (stepsDone: number) => boolean;
  /** The run's length in steps, once known (`--epochs` is converted when the source is open). */
  onSteps?: (steps: number) => void;
  /** Also print why each backend before the one taken was passed over. */
  verbose?: boolean;
}

/**
 * Trains per `config`. Every random choice is keyed by (seed, epoch, id, view), so the data
 * after step n is fully determined by the position n × batch: a resumed run sees exactly the
 * batches the uninterrupted one would (as long as no input was skipped as unreadable).
 */
export async function runTraining(
  c: TrainConfig,
  options: RunOptions = {},
): Promise<
  TrainResult & {
    backend: string;
    augment: AugmentPath;
    positives?: PositiveStats;
    knnInit?: number;
    knnFinal?: number;
    knnQueries?: number;
  }
> {
  prepareOutFolder(c.out);
  if (!options.resume) {
    const removed = claimRunFolder(c.out, options.overwrite === true);
    if (removed.length > 0) process.stderr.write(`--overwrite: removed the previous run's ${removed.join(', ')} from ${c.out}\n`);
  }
  const selection = await selectBackend(c.backend, c.threads === undefined ? {} : { threads: c.threads });
  for (const line of backendLines(selection, options.verbose === true)) process.stderr.write(`${line}\n`);
  const source = await openSource(c.data);
  if (c.epochs !== undefined) c = { ...c, steps: stepsForEpochs(c, source, c.epochs) };
  options.onSteps?.(c.steps);
  const settings = c.method === 'softrank' ? positiveSettings(c, source) : undefined;
  // Checked before any weight is read: a checkpoint whose bank does not fit is refused as a wrong option.
  const savedPositives = options.resume && settings ? checkSavedPositives(c, settings, join(c.out, 'checkpoint')) : undefined;
  let positives: PositiveSampling | undefined;
  const method = createMethod(c, (ids, z, dims) => positives?.reclustering.negatives(ids, z, dims));
  let live: { dispose(): void } | undefined;
  try {
    let startStep = 0;
    let optimizerState: ReturnType<typeof takeTensors> | undefined;
    if (options.resume) {
      const saved = readSaved(join(c.out, 'checkpoint')); // read and decoded once
      assignSaved(method.checkpointState(), saved);
      startStep = (saved.meta as CheckpointMeta).step;
      optimizerState = takeTensors(saved, 'optimizer/'); // frees the rest; the trainer frees these
    }
    const skipped = openSkipLog(join(c.out, 'skipped.jsonl'));
    const perBatch = sourceSamplesPerBatch(c);
    // Room for the batch being trained on, the next one being collated, and decodes in flight.
    const budget = new SampleBudget(3 * perBatch + 16);
    let onStep: ((done: number, batch: Batch, parts: Record<string, number>) => Promise<void>) | undefined;
    if (settings && isSoftRank(method)) {
      const softrank = method;
      const p = openPositives(c, source, softrank, {
        settings,
        startStep,
        budget,
        perBatch,
        onWarning: (line) => process.stderr.write(`${line}\n`),
        ...(savedPositives ? { saved: savedPositives } : {}),
      });
      positives = p;
      onStep = (done, batch, parts) => p.reclustering.afterStep(done, softrank.targetEmbeddings(), batch.ids, parts);
    }
    // kNN monitor: on the first logged step at least --knn-every steps after the last evaluation, and at the last step.
    const knnEvery = c['knn-every'] ?? 0; // checkpoints from before the monitor have no knn-every
    let knn: { monitor: KnnMonitor; last: number; init?: number; final?: number } | undefined;
    if (knnEvery > 0) {
      const k: NonNullable<typeof knn> = { monitor: await openKnnMonitor(c, method), last: startStep };
      knn = k;
      if (startStep === 0) {
        const t0 = performance.now();
        k.init = await k.monitor.evaluate();
        process.stderr.write(`knn at init ${k.init.toFixed(3)} (${((performance.now() - t0) / 1000).toFixed(1)} s per evaluation)\n`);
      }
      const before = onStep;
      onStep = async (done, batch, parts) => {
        await before?.(done, batch, parts);
        if ((done % c['log-every'] === 0 && done - k.last >= knnEvery) || done === c.steps) {
          parts['knn'] = k.final = await k.monitor.evaluate();
          k.last = done;
        }
      };
    }
    let attention: AttentionSource | undefined;
    let featureMask: EncoderMaps['mask'] | undefined;
    if (c.attention === 'encoder') {
      const l = liveEncoderAttention(method.checkpointState(), encoderPreset(c.encoder, c.size), c.size, c.seed);
      live = l;
      attention = l.source;
      featureMask = l.mask;
      const every = c['attention-refresh'] ?? 50;
      const before = onStep;
      onStep = async (done, batch, parts) => {
        await before?.(done, batch, parts);
        if (done % every === 0) l.refresh();
      };
    } else if (c.attention?.startsWith('encoder:')) {
      const maps = openEncoderAttention(c.attention.slice('encoder:'.length), '--attention', c.seed);
      live = maps;
      attention = maps.source;
      featureMask = maps.mask;
    } else if (c.attention !== undefined) {
      attention = await openAttentionSource(c.attention).catch(toConfigError);
    }
    // A resumed run keeps the path its checkpoint recorded: `auto` is resolved once, at the start,
    // and stored in the config, so the resumed batches are cut exactly as the uninterrupted run's.
    // A checkpoint from before --augment existed cut its views on the CPU.
    const saved: AugmentPath = c.augment === 'backend' ? 'backend' : 'cpu';
    const augment = options.resume
      ? { path: saved, reason: `augment: ${saved} (the run's, from its checkpoint)` }
      : 'precomputed' in source
        ? { path: 'cpu' as const, reason: '' }
        : await chooseViewAugment(c.augment, source, trainViewOptions(c));
    if (augment.reason) process.stderr.write(`${augment.reason}\n`); // precomputed views: nothing to cut, nothing to say
    c = { ...c, augment: augment.path };
    const batches = trainBatches(c, source, budget, (r) => skipped.record(r), startStep, positives, attention, featureMask, augment.path);
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
      onLog: options.onLog,
      shouldStop: options.shouldStop,
      ...(onStep ? { onStep } : {}),
      ...(positives ? { budgetPermits: (b: Batch) => b.ids.length / 2, onCheckpoint: positives.onCheckpoint } : {}),
    });
    positives?.reclustering.close();
    const n = await skipped.close();
    if (n + skipped.notes > 0) process.stderr.write(`${skipSummary(source.name, n, skipped)}\n`);
    return {
      ...result,
      backend: selection.backend,
      augment: augment.path,
      ...(positives ? { positives: positiveStats(positives) } : {}),
      ...(knn ? { knnInit: knn.init, knnFinal: knn.final, knnQueries: knn.monitor.set.queries } : {}),
    };
  } finally {
    positives?.reclustering.close();
    live?.dispose();
    method.dispose();
  }
}

/** The run's positive statistics, a stream's reservoir included. */
function positiveStats(p: PositiveSampling): PositiveStats {
  const stats = p.reclustering.stats();
  return p.reservoir ? { ...stats, reservoir: { capacity: p.reservoir.capacity, held: p.reservoir.size } } : stats;
}
