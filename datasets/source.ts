/**
 * What a source is, and the order in which an epoch visits it.
 *
 * A random-access source can read any sample by index (scenes, image folders, Fashion-MNIST,
 * indexed tar shards); its epoch order is a seeded permutation of this shard's indices.
 * Sharding is by index modulo `n` over the sorted ids, so shards are disjoint and together
 * cover every sample, in any process.
 */
import { keyedRng, shuffleInPlace, type Sample, type SkipRecord } from '../core/index.js';

export interface RandomAccessSource {
  /** Human-readable description, for logs and manifests. */
  readonly name: string;
  /** Number of samples; `Infinity` for an endless generator. */
  readonly size: number;
  /** The stable id of sample `index`. */
  id(index: number): string;
  /** Reads sample `index` (bytes or pixels). Rejects on unreadable input; the stream records it and goes on. */
  read(index: number): Promise<Sample>;
}

/**
 * A source that can only be read front to back (tar shards): it yields one epoch's samples,
 * sharded, shuffled (through a bounded buffer) and skipped as asked.
 */
export interface StreamSource {
  readonly name: string;
  samples(options?: EpochOptions, onSkip?: (record: SkipRecord) => void): AsyncIterable<Sample>;
}

export type Source = RandomAccessSource | StreamSource;

export function isRandomAccess(source: Source): source is RandomAccessSource {
  return 'read' in source;
}

/** `--shard i/n`: this process takes every n-th sample starting at i. */
export interface Shard {
  index: number;
  count: number;
}

export interface EpochOptions {
  seed?: number;
  epoch?: number;
  shard?: Shard;
  /** Visit in a seeded permutation (default) or in index order. */
  shuffle?: boolean;
  /** Samples of this epoch's order to pass over (resume after k samples). */
  skip?: number;
  /** At most this many samples in the epoch. */
  limit?: number;
}

/** Parses `i/n` (0 ≤ i < n), naming the flag when it is wrong. */
export function parseShard(value: string, field = '--shard'): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) {
    throw new Error(`${field}: expected i/n with 0 ≤ i < n, got "${value}"`);
  }
  return { index, count };
}

/**
 * The indices one epoch visits, in order: this shard's indices (every n-th), permuted by
 * `(seed, epoch, shard)` unless `shuffle` is false, then `skip` and `limit` applied.
 * Endless sources are visited in index order (each generated sample is already random).
 */
export function* epochOrder(size: number, options: EpochOptions = {}): Generator<number> {
  const { seed = 0, epoch = 0, shard = { index: 0, count: 1 }, shuffle = true, skip = 0, limit = Infinity } = options;
  if (!Number.isInteger(skip) || skip < 0) throw new Error(`skip: expected a non-negative integer, got "${skip}"`);
  let emitted = 0;
  if (size === Infinity) {
    for (let i = shard.index + skip * shard.count; emitted < limit; i += shard.count, emitted++) yield i;
    return;
  }
  const mine: number[] = [];
  for (let i = shard.index; i < size; i += shard.count) mine.push(i);
  if (shuffle) shuffleInPlace(mine, keyedRng(seed, 'epoch-order', epoch, shard.index, shard.count));
  for (let k = skip; k < mine.length && emitted < limit; k++, emitted++) yield mine[k] as number;
}

/**
 * Does `record` stand for one input that was lost (stage `read` or `decode`)? Other records are
 * notes on the way: a retried transfer (`fetch`) or a whole remote shard passed over (`shard`).
 */
export function isInputSkip(record: SkipRecord): boolean {
  return record.stage === 'read' || record.stage === 'decode';
}

/** Why a read of a known-bad input was refused without reading it. */
export const KNOWN_BAD = 'unreadable earlier in this job; not read again';

/**
 * `record` that passes on an unreadable or undecodable input (stage `read` or `decode`) once
 * and adds its id to `bad` (for {@link skippingKnownBad}); other records (notes on samples that
 * stayed) pass through.
 */
export function recordingOnce(record: (r: SkipRecord) => void, bad: Set<string>): (r: SkipRecord) => void {
  return (r) => {
    if (!isInputSkip(r)) return record(r);
    if (bad.has(r.id)) return;
    bad.add(r.id);
    record(r);
  };
}

/**
 * `source` that refuses the ids in `bad` without reading them, so that an input a job found
 * unreadable or undecodable costs one read per job, not one per epoch. A stream (tar shards)
 * cannot pass over a member without reading it; it is returned as it is.
 */
export function skippingKnownBad<S extends Source>(source: S, bad: ReadonlySet<string>): S {
  if (!isRandomAccess(source)) return source;
  // A view of `source` (its own fields and methods through the prototype), with `read` guarded.
  return Object.assign(Object.create(source) as S & RandomAccessSource, {
    read: (index: number) => (bad.has(source.id(index)) ? Promise.reject(new Error(KNOWN_BAD)) : source.read(index)),
  });
}

/**
 * One part of a seeded split of `source` by id: each id draws u in [0, 1) from a hash of
 * (seed, id) and falls in `test` when u < `heldOut`, in `val` when `heldOut` ≤ u < `heldOut` +
 * `val`, else in `train`; so the split does not depend on the order or the number of files, and
 * a validation share (`val` > 0) is carved from the train part, never from the test part. The
 * parts are disjoint and together the source.
 */
export function splitSource(
  source: RandomAccessSource,
  part: 'train' | 'val' | 'test',
  heldOut: number,
  seed: number,
  val = 0,
): RandomAccessSource {
  if (!(heldOut > 0 && heldOut < 1)) throw new Error(`held-out fraction: expected a number in (0, 1), got ${heldOut}`);
  if (!(val >= 0 && heldOut + val < 1)) throw new Error(`validation fraction: expected a number ≥ 0 leaving a train part, got ${val}`);
  if (part === 'val' && val === 0) throw new Error('splitSource: a val part needs a validation fraction > 0');
  const partOf = (u: number) => (u < heldOut ? 'test' : u < heldOut + val ? 'val' : 'train');
  const indices: number[] = [];
  for (let i = 0; i < source.size; i++) {
    if (partOf(keyedRng(seed, 'held-out', source.id(i)).next()) === part) indices.push(i);
  }
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  const label =
    part === 'test' ? `held-out ${pct(heldOut)}` : part === 'val' ? `validation ${pct(val)}` : `train ${pct(1 - heldOut - val)}`;
  return {
    name: `${source.name} (${label}, seed ${seed})`,
    size: indices.length,
    id: (i) => source.id(indices[i] as number),
    read: (i) => source.read(indices[i] as number),
  };
}

/** Samples `from` … `to − 1` of `source`, renumbered from 0 (`name` says which). */
export function rangeSource(source: RandomAccessSource, from: number, to: number, name: string): RandomAccessSource {
  if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from < to && to <= source.size))
    throw new Error(`rangeSource: expected 0 ≤ from < to ≤ ${source.size}, got ${from}…${to}`);
  return { name, size: to - from, id: (i) => source.id(from + i), read: (i) => source.read(from + i) };
}

/**
 * The samples of one epoch, read lazily in epoch order: a sample is read only when the
 * consumer pulls it. A read that fails (unreadable file) is reported to `onSkip` and the
 * next index is read in its place.
 */
export async function* readSamples(
  source: Source,
  options: EpochOptions = {},
  onSkip?: (record: SkipRecord) => void,
): AsyncGenerator<Sample> {
  if (!isRandomAccess(source)) {
    yield* source.samples(options, onSkip);
    return;
  }
  for (const index of epochOrder(source.size, options)) {
    try {
      yield await source.read(index);
    } catch (err) {
      onSkip?.({ id: source.id(index), stage: 'read', reason: err instanceof Error ? err.message : String(err) });
    }
  }
}
