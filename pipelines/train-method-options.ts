/**
 * The checks of `densestream train`'s options that belong to the dense terms (densecl's dense
 * queue, cells, warm-up, matching and head; hapicl's pixel cells, head and foreground crops) and
 * to softrank's clustering positives: each refused with a method that does not read it, checked
 * against the rest of the run (a queue holds a batch, a warm-up ends before the run does), and
 * defaulted by the method and the encoder. train-schema.ts declares them, with the measurements
 * behind their defaults; train-options.ts calls these checks in its order.
 */
import { ConfigError } from '../core/config-error.js';
import { encoderChannels, encoderGridSide, encoderPreset, encoderStride } from '../models/encoder-spec.js';
import { HARL_MIN_FOREGROUND } from '../operators/augment-presets.js';
import { DEFAULT_PIXEL_CELLS, defaultDenseCells, MAX_RESERVOIR, type TrainConfig } from './train-schema.js';

/** Options that only `--method softrank` reads (its clustering positives and its ranking); refused with another method. */
const SOFTRANK_OPTIONS = ['recluster-every', 'clusters', 'bank-size', 'bank-precision', 'negatives', 'relation', 'reservoir'] as const;

/**
 * The dense terms' options: refused with a method that has none, checked against the batch and
 * the run's length, and defaulted where the method reads them (densecl's dense head at the
 * encoder's width on a quarter of its grid; hapicl's crops kept on the foreground, its pixel cells).
 */
export function settleDenseOptions(c: TrainConfig, given: ReadonlySet<string>): void {
  if (c.method === 'densecl' && c['dense-queue'] > 0 && c['dense-queue'] < c.batch)
    throw new ConfigError(
      `--dense-queue ${c['dense-queue']}: a step's ${c.batch} dense keys go into the dense queue at once; give --dense-queue ${c.batch} or more (0: as --queue)`,
    );
  if (given.has('dense-queue') && c.method !== 'densecl')
    throw new ConfigError(`--dense-queue: only densecl has a dense queue; drop it with --method ${c.method}`);
  if (given.has('dense-cells') && c.method !== 'densecl')
    throw new ConfigError(`--dense-cells: only densecl has a dense term over a queue; drop it with --method ${c.method}`);
  if (given.has('dense-warmup') && c.method !== 'densecl')
    throw new ConfigError(`--dense-warmup: only densecl has a dense term to warm up; drop it with --method ${c.method}`);
  if (c['dense-warmup'] > 0 && !given.has('epochs') && c['dense-warmup'] >= c.steps)
    throw new ConfigError(
      `--dense-warmup ${c['dense-warmup']}: the run has ${c.steps} steps, so its dense term would never start; give fewer`,
    );
  if (given.has('dense-hidden') && c.method !== 'densecl' && c.method !== 'hapicl')
    throw new ConfigError(`--dense-hidden: only densecl's and hapicl's dense heads are sized by it; drop it with --method ${c.method}`);
  if (c.method === 'densecl' && !given.has('dense-hidden')) c['dense-hidden'] = encoderChannels(encoderPreset(c.encoder, c.size));
  if (c.method === 'densecl' && !given.has('dense-cells'))
    c['dense-cells'] = defaultDenseCells(encoderGridSide(encoderPreset(c.encoder, c.size), c.size));
  if (given.has('match') && c.method !== 'densecl')
    throw new ConfigError(`--match: only densecl matches cells between views; drop it with --method ${c.method}`);
  if (c.match === 'geometric' && c.size % encoderStride(encoderPreset(c.encoder, c.size)) !== 0) {
    throw new ConfigError(
      `--match geometric: --size ${c.size} must be a multiple of the ${c.encoder} encoder's stride ${encoderStride(encoderPreset(c.encoder, c.size))}`,
    );
  }
  if (given.has('min-foreground') && c.method !== 'hapicl')
    throw new ConfigError(`--min-foreground: only hapicl has masks to keep crops on; drop it with --method ${c.method}`);
  if (c.method === 'hapicl' && !given.has('min-foreground')) c['min-foreground'] = HARL_MIN_FOREGROUND;
  if (given.has('pixel-cells') && c.method !== 'hapicl')
    throw new ConfigError(`--pixel-cells: only hapicl has a pixel term; drop it with --method ${c.method}`);
  if (c.method === 'hapicl' && !given.has('pixel-cells')) c['pixel-cells'] = DEFAULT_PIXEL_CELLS;
}

/** softrank's constraints, and its options refused with other methods. */
export function checkSoftRankOptions(c: TrainConfig, given: ReadonlySet<string>): void {
  if (c.method !== 'softrank') {
    const misplaced = SOFTRANK_OPTIONS.filter((k) => given.has(k));
    if (misplaced.length > 0)
      throw new ConfigError(
        `--${misplaced.join(', --')}: only --method softrank reads ${misplaced.length === 1 ? 'it' : 'them'} (clustering positives, soft ranking); drop ${misplaced.length === 1 ? 'it' : 'them'} with --method ${c.method}`,
      );
    return;
  }
  if (c.batch % 2 !== 0 || c.batch < 4) {
    throw new ConfigError(
      `--batch: softrank trains on (anchor, positive) pairs, --batch counting both: expected an even number ≥ 4, got ${c.batch}`,
    );
  }
  if (c.data.startsWith('parquet:')) {
    throw new ConfigError(
      `--data ${c.data}: softrank cuts the views of an anchor and its positive after pairing them, so it needs images (scenes, dir:PATH, fashion-mnist, tar:PATTERN), not precomputed views`,
    );
  }
  // Only a stream draws positives from a reservoir; a random-access source reads them again by id.
  if (c.reservoir !== undefined) {
    if (!c.data.startsWith('tar:'))
      throw new ConfigError(
        `--reservoir: only a stream source (tar:PATTERN) draws positives from a reservoir of recent samples; --data ${c.data} reads them again by id, drop --reservoir`,
      );
    if (c.reservoir > MAX_RESERVOIR)
      throw new ConfigError(
        `--reservoir ${c.reservoir}: holds that many decoded images (≈ 62 KB each at --size 64); expected at most ${MAX_RESERVOIR}`,
      );
  }
  const bank = c['bank-size'];
  if (bank !== undefined && c.clusters !== undefined && 4 * c.clusters > bank) {
    throw new ConfigError(
      `--clusters ${c.clusters}: needs at least ${4 * c.clusters} embeddings to cluster (4 per cluster), but --bank-size is ${bank}`,
    );
  }
  // Without --bank-size the bank's size is known once the source is open (positiveSettings checks it then).
  if (bank !== undefined && c.negatives !== undefined && c.negatives >= bank) {
    throw new ConfigError(`--negatives ${c.negatives}: expected fewer negatives per pair than the bank holds, --bank-size ${bank}`);
  }
}
