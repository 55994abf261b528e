/**
 * `train --method softrank`'s clustering positives for one run: the bank size, k and negatives
 * the configuration asks for, the `Reclustering` (fresh, or taken up from a checkpoint), the
 * source reads positives are fetched by (or, for a stream, the reservoir they are drawn from),
 * and what a checkpoint stores of them.
 */
import { isRandomAccess, type Source } from '../datasets/source.js';
import type { SoftRank } from '../methods/softrank.js';
import type { TrainerHook } from '../core/trainer-hook.js';
import { PositiveReservoir } from './reservoir.js';
import type { AugmentPath } from '../operators/augment-path.js';
import type { SampleBudget } from '../operators/sample-budget.js';
import { hasPositives, readPositives, writePositives, type PositivesState } from './checkpoint-codec.js';
import { Reclustering } from './reclustering.js';
import { ConfigError } from '../core/config-error.js';
import { wholeImageEmbedder } from './anchor-embedder.js';
import type { EmbeddingPrecision } from './embedding-bank.js';
import { readableById, type ReadableById } from './pair-by-id.js';

/** The options of a `train` run that its positives follow (a `TrainConfig` is one), flags as keys: errors name them. */
export interface PositivesConfig {
  data: string;
  steps: number;
  seed: number;
  /** The training view size: anchors are embedded whole at it. */
  size: number;
  'bank-size'?: number | undefined;
  'bank-precision': EmbeddingPrecision;
  clusters?: number | undefined;
  negatives?: number | undefined;
  'recluster-every': number;
  reservoir?: number | undefined;
}

/**
 * Default bank: every sample of a finite source up to 65 536 (32 MB at float32, 16 MB at
 * float16). A clustered anchor draws its positive from its own cluster; an anchor the bank
 * does not hold is placed by its nearest centroid, so a bank smaller than the source still
 * gives every anchor a cluster positive, from a smaller pool: raise `--bank-size` for larger
 * corpora (float16: 256 MB per million).
 */
export const DEFAULT_BANK_SIZE = 65_536;
/**
 * Default k: min(100, bank/4). On Fashion-MNIST (10 000 images, random-init slim encoder,
 * `npm run bench -- positives`), a clustering positive shares its anchor's class 33% of the time
 * at k = 10, 56% at k = 100 and 64% at k = 500 (random pairs: 10%), while k-means of a full
 * 65 536-row bank takes 1.3 s, 7.4 s and 31 s in the worker on the 2-core machine: k = 100 takes
 * most of the gain for a clustering the worker hides behind a few steps. At least 4 embeddings
 * per cluster on average.
 */
export const DEFAULT_CLUSTERS = 100;

/**
 * Default `--reservoir` (stream sources): the last 1 024 decoded samples. Its memory is that many
 * decoded images — at `--size 64` a square image is decoded to 144 px, ≈ 62 KB, so ≈ 64 MB — and
 * with k = 100 it holds about 10 samples per cluster to draw a positive from.
 */
export const DEFAULT_RESERVOIR = 1024;

/** The projection size of `createSoftRank` (its default `dim`): the bank's dims. */
const DIMS = 128;

export interface PositiveSettings {
  bankSize: number;
  clusters: number;
  /** Negatives K per pair (0: none). */
  negatives: number;
}

/** softrank's bank size, k and K for `source`: the defaults filled in, checked against the source's size. */
export function positiveSettings(c: PositivesConfig, source: Source): PositiveSettings {
  const size = isRandomAccess(source) ? source.size : Infinity;
  const bankSize = c['bank-size'] ?? Math.min(size, DEFAULT_BANK_SIZE);
  const clusters = c.clusters ?? Math.min(DEFAULT_CLUSTERS, Math.floor(bankSize / 4));
  const negatives = c.negatives ?? 0; // checkpoints from before --negatives have none
  const ofData = c['bank-size'] === undefined ? ` (the size of --data ${c.data})` : '';
  if (clusters < 2)
    throw new ConfigError(`--data ${c.data}: ${size} samples are too few for clustering positives (softrank needs at least 8)`);
  if (4 * clusters > bankSize) {
    throw new ConfigError(
      `--clusters ${clusters}: needs at least ${4 * clusters} embeddings to cluster (4 per cluster), but the bank holds ${bankSize}${ofData}`,
    );
  }
  if (negatives >= bankSize)
    throw new ConfigError(`--negatives ${negatives}: expected fewer negatives per pair than the bank holds, ${bankSize}${ofData}`);
  return { bankSize, clusters, negatives };
}

/** The reads to remember for positives fetched by id: every id of the bank was read within the last 2 × bank-size reads (a re-read counts as one), plus what is in flight. */
function rememberedReads(r: Reclustering, budget: SampleBudget, perBatch: number): number {
  return 2 * r.bank.capacity + budget.capacity + (r.every + r.lag + 1) * perBatch;
}

/** What the data plane pairs anchors with: the clusterings, and where positives are read again. */
export interface PositiveSampling {
  reclustering: Reclustering;
  /** Random-access sources: the source as the data plane reads it (reads remembered), and the re-reads of positives. */
  byId?: ReadableById;
  /** Stream sources: the recent decoded samples positives are drawn from (not checkpointed). */
  reservoir?: PositiveReservoir;
}

/** A run's clustering positives: the data plane's side, and (`hook`) what the trainer feeds, checkpoints and restores. */
export interface RunPositives extends PositiveSampling {
  /**
   * The trainer's side: after each step, the step's target embeddings go to the bank (and a
   * clustering may start, or be waited for); a checkpoint holds the bank, clusterings and
   * remembered reads, and a resume takes them back; a batch of pairs holds one budget permit
   * per pair.
   */
  hook: TrainerHook;
}

export interface OpenPositivesOptions {
  settings: PositiveSettings;
  startStep: number;
  /** Resume: the checkpoint's positives (from {@link checkSavedPositives}), taken up when the trainer restores. */
  saved?: PositivesState;
  budget: SampleBudget;
  /** Anchors per step, B/2. */
  perBatch: number;
  onWarning: (line: string) => void;
  /** Where the anchors' whole-image views are cut: the run's own path (default cpu). */
  augment?: AugmentPath;
}

/**
 * Reads the positives of the checkpoint in `dir` and checks them against this run's settings,
 * before any weight is loaded: a checkpoint without them (written before softrank stored its
 * bank) or with a bank of another size or precision is refused, naming the options.
 */
export function checkSavedPositives(c: PositivesConfig, settings: PositiveSettings, dir: string): PositivesState {
  if (!hasPositives(dir)) {
    throw new ConfigError(
      `--resume: ${dir} holds no embedding bank (positives.json): it was written before softrank checkpointed its clustering positives, so the run cannot go on exactly; start a new run`,
    );
  }
  let state: PositivesState;
  try {
    state = readPositives(dir);
  } catch (err) {
    throw new ConfigError(`--resume: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { bank } = state;
  const differ: string[] = [];
  if (bank.capacity !== settings.bankSize) differ.push(`--bank-size ${settings.bankSize} (the checkpoint's bank holds ${bank.capacity})`);
  if (bank.precision !== c['bank-precision'])
    differ.push(`--bank-precision ${c['bank-precision']} (the checkpoint's bank is ${bank.precision})`);
  if (bank.dims !== DIMS) differ.push(`${DIMS}-d embeddings (the checkpoint's are ${bank.dims}-d)`);
  if (state.clusters !== settings.clusters)
    differ.push(`--clusters ${settings.clusters} (the checkpoint clustered into ${state.clusters})`);
  if (state.every !== c['recluster-every']) differ.push(`--recluster-every ${c['recluster-every']} (the checkpoint's is ${state.every})`);
  if (differ.length > 0) {
    throw new ConfigError(
      `--resume: this run's clustering positives do not fit the checkpoint in ${dir}: ${differ.join('; ')}. Resume with the checkpoint's settings, or start a new run`,
    );
  }
  return state;
}

/**
 * The clustering positives of a softrank run from `startStep`: new, or (when the trainer
 * restores) the checkpoint's (`o.saved`). A stream's reservoir is not in the checkpoint (it
 * would be `--reservoir` decoded images): a resumed stream run starts it empty and says so.
 */
export function openPositives(c: PositivesConfig, source: Source, method: SoftRank, o: OpenPositivesOptions): RunPositives {
  const reclustering = new Reclustering({
    dims: DIMS,
    bankSize: o.settings.bankSize,
    precision: c['bank-precision'],
    clusters: o.settings.clusters,
    every: c['recluster-every'],
    anchorsPerStep: o.perBatch,
    steps: c.steps,
    startStep: o.startStep,
    seed: c.seed,
    negatives: o.settings.negatives,
    anchors: wholeImageEmbedder(method, c.size, c.seed, { augment: o.augment ?? 'cpu' }),
    onWarning: o.onWarning,
  });
  const reservoir = isRandomAccess(source) ? undefined : new PositiveReservoir(c.reservoir ?? DEFAULT_RESERVOIR);
  const byId = isRandomAccess(source) ? readableById(source, rememberedReads(reclustering, o.budget, o.perBatch)) : undefined;
  const hook: TrainerHook = {
    onRestore(dir) {
      if (!o.saved) throw new Error(`softrank: resuming from ${dir} without its positives (checkSavedPositives reads them first)`);
      reclustering.restore(o.saved);
      if (byId && o.saved.reads) byId.restore(o.saved.reads);
      if (reservoir) {
        o.onWarning(
          `softrank: --data ${c.data} is a stream: the reservoir of the last ${reservoir.capacity} samples that positives are drawn from is not in the checkpoint and restarts empty, ` +
            'so until it refills anchors get other positives (or are their own) than in the uninterrupted run: resume is not exact for streams (the bank and clusterings are restored)',
        );
      }
    },
    onStep: ({ step, batch, parts }) => reclustering.afterStep(step, method.targetEmbeddings(), batch.ids, parts),
    async onCheckpoint(dir, step) {
      const state = await reclustering.checkpointState(step);
      writePositives(dir, byId ? { ...state, reads: byId.entries() } : state);
    },
    budgetPermits: (batch) => batch.ids.length / 2,
    close: () => reclustering.close(),
  };
  return { reclustering, hook, ...(byId ? { byId } : {}), ...(reservoir ? { reservoir } : {}) };
}
