/**
 * A remote shard's bytes, front to back, surviving the faults of long transfers: a read that
 * breaks (connection cut, stalled past the per-read timeout, 5xx, 429) is retried with a
 * `Range` request from the byte where it stopped, after an exponential backoff with full
 * jitter or the server's `Retry-After`. No byte is yielded twice and none is lost; a shard
 * that changed between reads is refused rather than spliced.
 */
import { FetchError, describeNetworkError, type RangeFetcher } from './range-fetch.js';
import type { ShardLocation } from './shard-list.js';

export interface RetryPolicy {
  /** Failed attempts in a row, without a byte of progress, before the shard is given up (default 6). */
  retries: number;
  /** First backoff; each further failure doubles it, up to `maxDelayMs` (defaults 500 ms, 30 s). */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest wait for the response or for any one chunk of it; a stalled read is cut and resumed (default 30 s). */
  readTimeoutMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { retries: 6, baseDelayMs: 500, maxDelayMs: 30_000, readTimeoutMs: 30_000 };

/** Retry-After is honoured, but no single wait exceeds this. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** A shard that could not be read: missing (403/404/410), refused, or unreachable after the retries. */
export class ShardReadError extends Error {
  constructor(
    readonly shard: ShardLocation,
    message: string,
    readonly missing: boolean,
    /** Bytes of the shard read before it failed. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'ShardReadError';
  }
}

class ReadTimeout extends Error {}

/** Why a read stopped when its reader no longer wants it. */
class Cancelled extends Error {}

/**
 * `promise`, or a {@link ReadTimeout} after `ms`, or {@link Cancelled} once `cancel` fires;
 * either way the read is aborted.
 */
async function within<T>(promise: Promise<T>, ms: number, controller: AbortController, cancel?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onCancel: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new ReadTimeout(`no data for ${ms / 1000} s`)); // first, so the race reports the timeout, not the abort
      controller.abort();
    }, ms);
    onCancel = () => {
      reject(new Cancelled('cancelled'));
      controller.abort();
    };
    if (cancel?.aborted) onCancel();
    else cancel?.addEventListener('abort', onCancel, { once: true });
  });
  promise.catch(() => undefined); // after a timeout the read rejects too, with the abort: already handled
  try {
    return await Promise.race([promise, stop]);
  } finally {
    clearTimeout(timer);
    if (onCancel) cancel?.removeEventListener('abort', onCancel);
  }
}

/** Resolves after `ms`, or at once when `cancel` fires. */
function sleep(ms: number, cancel?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (cancel?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      cancel?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    cancel?.addEventListener('abort', done, { once: true });
  });
}

/** Full jitter (AWS's "exponential backoff and jitter"): uniform in [0, min(max, base·2^(n−1))]. */
export function backoffMs(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1)));
}

/** What a read of a shard learnt: the size and version the server gave (filled as it goes). */
export interface ShardReadInfo {
  size?: number;
  version?: string;
}

/**
 * The bytes of `shard`, read through `fetch` with retries. `onRetry` hears each retry's reason
 * (for the job's skip log). Ending the iteration early aborts the transfer; so does `cancel`,
 * which also cuts a backoff short (the iteration then ends), so that a reader that stopped
 * waiting never keeps a connection or a timer alive.
 */
export async function* shardBytes(
  shard: ShardLocation,
  fetch: RangeFetcher,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  onRetry?: (reason: string) => void,
  cancel?: AbortSignal,
  info: ShardReadInfo = {},
): AsyncGenerator<Uint8Array> {
  let offset = 0;
  let failures = 0;
  const changed = (what: string) =>
    new ShardReadError(
      shard,
      `${shard.location}: the shard changed while it was read (${what}); its samples cannot be resumed`,
      false,
      offset,
    );
  for (;;) {
    if (cancel?.aborted) return;
    const controller = new AbortController();
    const progressAt = offset;
    try {
      const response = await within(fetch(shard, offset, info.version, controller.signal), policy.readTimeoutMs, controller, cancel);
      // A resumed read must continue the object the first read began: same version, same size.
      if (offset > 0 && info.version !== undefined && response.version !== undefined && response.version !== info.version)
        throw changed(`version ${info.version}, now ${response.version}`);
      if (offset > 0 && info.size !== undefined && response.size !== undefined && response.size !== info.size)
        throw changed(`${info.size} bytes, now ${response.size}`);
      info.version ??= response.version;
      info.size ??= response.size;
      const size = info.size;
      const chunks = response.body[Symbol.asyncIterator]();
      let whole = false;
      try {
        for (;;) {
          const next = await within(chunks.next(), policy.readTimeoutMs, controller, cancel);
          if (next.done) break;
          if (next.value.byteLength === 0) continue;
          offset += next.value.byteLength;
          yield next.value;
        }
        whole = true;
      } finally {
        // A consumer that stopped early, or a failed read: let the connection go. A body read to
        // its end is left alone, so that its keep-alive connection serves the next shard.
        if (!whole) {
          controller.abort();
          // A body's iterator may reject once aborted; its error is the abort's, already handled.
          void chunks.return?.().catch(() => undefined);
        }
      }
      if (size !== undefined && offset < size) throw new FetchError(`connection closed at byte ${offset} of ${size}`, true);
      if (size !== undefined && offset > size)
        throw new ShardReadError(shard, `${shard.location}: read ${offset} bytes of a ${size}-byte shard`, false, offset);
      return;
    } catch (err) {
      if (err instanceof ShardReadError) throw err;
      if (err instanceof Cancelled || cancel?.aborted) return;
      const size = info.size;
      const fetchError = err instanceof FetchError ? err : undefined;
      const reason = fetchError?.message ?? (err instanceof ReadTimeout ? err.message : describeNetworkError(err));
      if (fetchError && !fetchError.retryable) throw new ShardReadError(shard, fetchError.message, fetchError.missing, offset);
      failures = offset > progressAt ? 1 : failures + 1;
      if (failures > policy.retries) {
        throw new ShardReadError(
          shard,
          `${shard.location}: gave up after ${failures} failed attempts in a row at byte ${offset}${size !== undefined ? ` of ${size}` : ''} (last: ${reason})`,
          false,
          offset,
        );
      }
      // A transfer that broke after making progress found the server up: ask again at once.
      // Backoff is for failures in a row that read nothing (an overloaded or absent server).
      const broke = offset > progressAt;
      const wait =
        fetchError?.retryAfterMs !== undefined
          ? Math.min(fetchError.retryAfterMs, MAX_RETRY_AFTER_MS)
          : broke
            ? 0
            : backoffMs(failures, policy);
      onRetry?.(
        `retry ${failures}/${policy.retries} from byte ${offset}${size !== undefined ? ` of ${size}` : ''} in ${wait} ms${fetchError?.retryAfterMs !== undefined ? ' (Retry-After)' : ''}: ${reason}`,
      );
      await sleep(wait, cancel);
    }
  }
}
