/**
 * `tar:PATTERN` — WebDataset-style shards: `shard-{000..099}.tar`, each a tar of samples whose
 * files share a key (`dir/0001.jpg`, `dir/0001.cls`, `dir/0001.json`). A stream source: it
 * reads shards front to back (shard order shuffled per epoch) through a seeded shuffle
 * buffer, holding at most `shuffleBuffer` encoded samples.
 *
 * Shards may be local files, `http(s)://` URLs or `s3://` objects ({@link expandShardPattern}).
 * A remote shard streams through {@link shardBytes}, which resumes a broken transfer where it
 * stopped, so memory is bounded by the shuffle buffer and the shards in flight, never by a
 * shard's size or their number. A shard that cannot be read is the job's end or a recorded
 * skip (`onMissingShard`); a truncated or damaged archive loses the samples from the break on,
 * recorded, and the epoch goes on.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { keyedRng, shuffleInPlace, type Sample, type SkipRecord } from '../core/index.js';
import { httpRangeFetcher, s3RangeFetcher, type RangeFetcher, type S3Settings } from './range-fetch.js';
import { DEFAULT_RETRY_POLICY, ShardReadError, shardBytes, type RetryPolicy, type ShardReadInfo } from './shard-bytes.js';
import { ShardCache, type ShardCacheOptions } from './shard-cache.js';
import { expandShardPattern, type ShardLocation } from './shard-list.js';
import type { EpochOptions, Shard, StreamSource } from './source.js';

const IMAGE_EXT = new Set(['jpg', 'jpeg', 'png', 'webp', 'tif', 'tiff', 'gif', 'avif']);

/** WebDataset's key: the path up to the first dot of the file name; the rest is the field. */
function splitKey(path: string): { key: string; field: string } {
  const slash = path.lastIndexOf('/');
  const dot = path.indexOf('.', slash + 1);
  return dot < 0 ? { key: path, field: '' } : { key: path.slice(0, dot), field: path.slice(dot + 1).toLowerCase() };
}

interface Group {
  key: string;
  fields: Map<string, Uint8Array>;
}

/**
 * The sample groups of one tar, in archive order. A group is yielded only once the next key
 * starts or the archive ends, so an archive that breaks never yields its last, maybe partial, group.
 */
async function* groups(bytes: Readable): AsyncGenerator<Group> {
  const archive = extract();
  bytes.on('error', (err) => archive.destroy(err)).pipe(archive);
  let current: Group | undefined;
  try {
    for await (const entry of archive) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      if (entry.header.type !== 'file') continue;
      const { key, field } = splitKey(entry.header.name);
      if (current && current.key !== key) {
        yield current;
        current = undefined;
      }
      current ??= { key, fields: new Map() };
      current.fields.set(field, new Uint8Array(Buffer.concat(chunks)));
    }
  } finally {
    bytes.destroy(); // an early stop (limit reached) lets a remote transfer go
  }
  if (current) yield current;
}

function toSample(shard: ShardLocation, group: Group): Sample {
  const id = `${shard.name}:${group.key}`;
  const image = [...group.fields.entries()].find(([f]) => IMAGE_EXT.has(f.split('.').pop() ?? ''));
  if (!image) throw new Error(`no image among ${[...group.fields.keys()].join(', ') || 'no files'}`);
  const sample: Sample = { id, bytes: image[1] };
  const cls = group.fields.get('cls');
  const json = group.fields.get('json');
  if (cls) sample.label = Number.parseInt(Buffer.from(cls).toString('utf8').trim(), 10);
  else if (json) {
    const meta = JSON.parse(Buffer.from(json).toString('utf8')) as { label?: unknown };
    if (typeof meta.label === 'number') sample.label = meta.label;
  }
  return sample;
}

export type MissingShardPolicy = 'fail' | 'skip';

export interface TarOptions {
  /** Samples held for shuffling (default 1 000; 0 keeps archive order). */
  shuffleBuffer?: number;
  /**
   * A remote shard that is missing (403, 404, 410) or still unreadable after the retries: `fail`
   * (default) ends the job naming the URL; `skip` records it and goes on.
   */
  onMissingShard?: MissingShardPolicy;
  /** Retries, backoff and the per-read timeout of remote reads. */
  retry?: Partial<RetryPolicy>;
  /** Remote shards read at once: the one being parsed and those opened ahead of it (default 2). */
  shardsInFlight?: number;
  s3?: S3Settings;
  /** Keep remote shards on local disk (LRU), so later epochs read them from there. */
  cache?: ShardCacheOptions;
  /** The readers of remote shards, by scheme (tests inject their own). */
  fetchers?: Partial<Record<'http' | 's3', RangeFetcher>>;
}

/**
 * This host's shards under `--shard i/n`. With at least `n` shards, whole shards are dealt
 * round-robin over their sorted names, so a host reads only its own (what matters when they are
 * remote); with fewer, every host reads every shard and keeps the samples whose id hashes to it.
 * Either way the parts are disjoint and cover every sample.
 */
export function shardsOfHost(shards: readonly ShardLocation[], shard: Shard): { shards: ShardLocation[]; bySample: boolean } {
  if (shard.count === 1) return { shards: [...shards], bySample: false };
  if (shards.length < shard.count) return { shards: [...shards], bySample: true };
  const sorted = [...shards].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { shards: sorted.filter((_, k) => k % shard.count === shard.index), bySample: false };
}

/** A byte source failed for a reason other than the shard (local I/O, a bug): the job's end, not a damaged archive. */
class SourceFailure extends Error {}

/** `bytes`, with its failures marked: a {@link ShardReadError} as it is, anything else as a {@link SourceFailure}. */
async function* marked(bytes: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* bytes;
  } catch (err) {
    if (err instanceof ShardReadError) throw err;
    throw new SourceFailure(err instanceof Error ? err.message : String(err), { cause: err });
  }
}

/**
 * One shard's bytes, with its first chunk already asked for when `ahead`, so that a shard's
 * connection opens while the one before it is still being parsed (its memory: that chunk and
 * the socket's buffer). `cancel` aborts the transfer and any backoff at once, then ends the
 * iteration: a pending read or retry does not outlive its reader.
 */
function shardRead(
  open: (cancel: AbortSignal) => AsyncIterable<Uint8Array>,
  ahead: boolean,
): { bytes: AsyncIterable<Uint8Array>; cancel: () => void } {
  const controller = new AbortController();
  const it = marked(open(controller.signal))[Symbol.asyncIterator]();
  let first: Promise<IteratorResult<Uint8Array>> | undefined;
  if (ahead) {
    first = it.next();
    first.catch(() => undefined); // surfaced when the shard's turn comes
  }
  return {
    bytes: {
      [Symbol.asyncIterator]: () => ({
        next: () => {
          const f = first;
          first = undefined;
          return f ?? it.next();
        },
        return: async () => {
          controller.abort();
          await it.return(undefined).catch(() => undefined);
          return { done: true as const, value: undefined };
        },
      }),
    },
    cancel: () => {
      controller.abort();
      void it.return(undefined).catch(() => undefined);
    },
  };
}

export function tarShardsSource(pattern: string, options: TarOptions = {}): StreamSource {
  const files = expandShardPattern(pattern);
  const bufferSize = options.shuffleBuffer ?? 1000;
  const r = options.retry ?? {};
  const policy: RetryPolicy = {
    retries: r.retries ?? DEFAULT_RETRY_POLICY.retries,
    baseDelayMs: r.baseDelayMs ?? DEFAULT_RETRY_POLICY.baseDelayMs,
    maxDelayMs: r.maxDelayMs ?? DEFAULT_RETRY_POLICY.maxDelayMs,
    readTimeoutMs: r.readTimeoutMs ?? DEFAULT_RETRY_POLICY.readTimeoutMs,
  };
  const onMissing = options.onMissingShard ?? 'fail';
  const ahead = Math.max(0, (options.shardsInFlight ?? 2) - 1);
  const cache = options.cache ? new ShardCache(options.cache) : undefined;
  const fetchers: Partial<Record<'http' | 's3', RangeFetcher>> = { ...options.fetchers };
  const fetcherOf = (scheme: 'http' | 's3'): RangeFetcher =>
    (fetchers[scheme] ??= scheme === 'http' ? httpRangeFetcher : s3RangeFetcher(options.s3 ?? {}));
  const remote = files.filter((f) => f.scheme !== 'file').length;
  return {
    // The split is part of the name, which jobs keep in their manifests: an output written
    // when --shard i/n split by sample id is not resumed with parts split by whole shard.
    name: `tar:${pattern} (${files.length} shards${remote > 0 ? `, ${remote} remote` : ''}; --shard splits whole shards)`,
    async *samples(epoch: EpochOptions = {}, onSkip?: (r: SkipRecord) => void) {
      const { seed = 0, epoch: e = 0, shard = { index: 0, count: 1 }, shuffle = true, skip = 0, limit = Infinity } = epoch;
      const rng = keyedRng(seed, 'tar-order', e, shard.index, shard.count);
      const mine = shardsOfHost(files, shard);
      const order = mine.shards;
      if (shuffle) shuffleInPlace(order, rng);
      const readOf = (f: ShardLocation, ahead: boolean) =>
        shardRead((cancel) => {
          if (f.scheme === 'file') return createReadStream(f.location) as AsyncIterable<Uint8Array>;
          const scheme = f.scheme;
          const read = (info: ShardReadInfo) =>
            shardBytes(f, fetcherOf(scheme), policy, (reason) => onSkip?.({ id: f.name, stage: 'fetch', reason }), cancel, info);
          return cache ? cache.bytes(f, read) : read({});
        }, ahead);
      const opened: Array<ReturnType<typeof shardRead> | undefined> = [];
      const open = (k: number) => {
        const f = order[k];
        if (f && opened[k] === undefined && f.scheme !== 'file') opened[k] = readOf(f, true);
      };
      const buffer: Sample[] = [];
      let passed = 0;
      let emitted = 0;
      const out = function* (s: Sample): Generator<Sample> {
        if (passed < skip) {
          passed++;
          return;
        }
        if (emitted >= limit) return;
        emitted++;
        yield s;
      };
      try {
        for (let k = 0; k < order.length; k++) {
          const f = order[k] as ShardLocation;
          for (let j = k; j <= k + ahead; j++) open(j);
          const read = opened[k] ?? readOf(f, false);
          opened[k] = undefined;
          try {
            for await (const group of groups(Readable.from(read.bytes, { objectMode: false }))) {
              // Membership hangs on the id alone, so --shard i/n partitions exactly in any order.
              const id = `${f.name}:${group.key}`;
              if (mine.bySample && keyedRng('shard', id).int(shard.count) !== shard.index) continue;
              let sample: Sample;
              try {
                sample = toSample(f, group);
              } catch (err) {
                onSkip?.({ id, stage: 'read', reason: err instanceof Error ? err.message : String(err) });
                continue;
              }
              if (!shuffle || bufferSize === 0) {
                yield* out(sample);
                if (emitted >= limit) return;
                continue;
              }
              if (buffer.length < bufferSize) {
                buffer.push(sample);
                continue;
              }
              const slot = rng.int(bufferSize);
              const picked = buffer[slot] as Sample;
              buffer[slot] = sample;
              yield* out(picked);
              if (emitted >= limit) return;
            }
          } catch (err) {
            if (err instanceof ShardReadError) {
              if (onMissing === 'fail') throw new Error(`tar: ${err.message} (--on-missing-shard skip records such a shard and goes on)`);
              onSkip?.({
                id: f.name,
                stage: 'shard',
                reason: `${err.message}; ${err.offset > 0 ? `the samples after byte ${err.offset} are` : 'the shard is'} skipped`,
              });
              continue;
            }
            if (err instanceof SourceFailure) throw new Error(`tar: ${f.location}: ${err.message}`, { cause: err.cause });
            const message = err instanceof Error ? err.message : String(err);
            onSkip?.({
              id: f.name,
              stage: 'shard',
              reason: `damaged or truncated archive (${message}): the sample it broke in and every later one are lost`,
            });
          } finally {
            read.cancel(); // a no-op for a shard read to its end
          }
        }
      } finally {
        for (const o of opened) o?.cancel();
      }
      shuffleInPlace(buffer, rng);
      for (const s of buffer) yield* out(s);
    },
  };
}
