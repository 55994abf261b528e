/**
 * One ranged GET of a remote shard, over HTTP(S) (Node's http client, keeping connections alive)
 * or S3 (`@aws-sdk/client-s3`, loaded only when an `s3://` shard is read). Each answers the
 * bytes from `start` on, or a {@link FetchError} that says whether asking again can help.
 * Retrying, resuming and timeouts are the caller's ({@link shardBytes}); the S3 client's own
 * retries are off so that one policy governs both protocols.
 */
import type * as S3Sdk from '@aws-sdk/client-s3';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { parseS3Url, type ShardLocation } from './shard-list.js';

export interface RangeResponse {
  /** The object's bytes from the requested start. */
  body: AsyncIterable<Uint8Array>;
  /** The object's whole size, when the server says. */
  size?: number;
  /** The server's validator (ETag, else Last-Modified); a resumed read must find the first read's. */
  version?: string;
}

/** Why a ranged GET failed; `retryable` says whether asking again can help. */
export class FetchError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    /** The server's Retry-After, in milliseconds. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'FetchError';
  }

  /** 403, 404 and 410: the shard is not there for us; asking again will not change that. */
  get missing(): boolean {
    return this.status === 403 || this.status === 404 || this.status === 410;
  }
}

/** The bytes of `shard` from `start` on; `version`, when given, is what the first read saw. */
export type RangeFetcher = (
  shard: ShardLocation,
  start: number,
  version: string | undefined,
  signal: AbortSignal,
) => Promise<RangeResponse>;

/** Retry-After as seconds or an HTTP date → milliseconds from now. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Is an HTTP status worth another try: 408, 429 and every 5xx. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

function statusError(what: string, status: number, statusText: string, retryAfter?: string | null): FetchError {
  return new FetchError(
    `${what}: HTTP ${status}${statusText ? ` ${statusText}` : ''}`,
    retryableStatus(status),
    status,
    parseRetryAfter(retryAfter),
  );
}

/** An async iterable over `body` that passes over its first `bytes` bytes (a server that ignored Range). */
async function* dropping(body: AsyncIterable<Uint8Array>, bytes: number): AsyncGenerator<Uint8Array> {
  let left = bytes;
  for await (const chunk of body) {
    if (left >= chunk.byteLength) {
      left -= chunk.byteLength;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
}

const EMPTY: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: async function* () {} };

// Node's own HTTP client with keep-alive agents: in `bench remote` it read loopback shards
// faster than fetch, whose web streams add a promise per chunk.
const AGENTS = { 'http:': new HttpAgent({ keepAlive: true }), 'https:': new HttpsAgent({ keepAlive: true }) };

/** One GET of `url`: the response once its headers are in, or the network error. */
function get(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let response: IncomingMessage | undefined;
    const req = send(url, { headers, agent: AGENTS[url.protocol as 'http:' | 'https:'] }, (res) => {
      response = res;
      // An abort errors the response; a reader sees that through its iterator, and once the
      // reader is gone nobody needs to.
      res.on('error', () => undefined);
      resolve(res);
    });
    req.on('error', reject); // after the response, a no-op: the response carries the failure
    // Not `signal` as an option: Node then destroys the request even after its response ended,
    // and so the keep-alive socket, by then back in the pool or serving another request.
    const abort = () => {
      if (!response) req.destroy(new Error('aborted'));
      else if (!response.complete) response.destroy();
    };
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
    req.on('close', () => signal.removeEventListener('abort', abort));
    req.end();
  });
}

/** Reads and drops a response's body, so that its connection can serve the next request. */
function discard(res: IncomingMessage): void {
  res.resume();
}

export const httpRangeFetcher: RangeFetcher = async (shard, start, version, signal) => {
  const url = shard.location;
  const headers: Record<string, string> = {};
  if (start > 0) {
    headers.range = `bytes=${start}-`;
    // If the object changed, the server answers 200 with the new whole object, not a range of it.
    if (version) headers['if-range'] = version;
  }
  let res: IncomingMessage;
  try {
    res = await get(new URL(url), headers, signal);
  } catch (err) {
    throw new FetchError(`${url}: ${describeNetworkError(err)}`, true);
  }
  const status = res.statusCode ?? 0;
  const header = (name: string): string | undefined => {
    const v = res.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const seen = header('etag') ?? header('last-modified');
  if (status === 416 && start > 0) {
    discard(res);
    return { body: EMPTY, size: start, version }; // asked past the end: everything was read
  }
  if (status !== 200 && status !== 206) {
    discard(res);
    throw statusError(url, status, res.statusMessage ?? '', header('retry-after'));
  }
  const body = res as AsyncIterable<Uint8Array>;
  if (status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header('content-range') ?? '');
    if (!range || Number(range[1]) !== start) {
      res.destroy();
      throw new FetchError(`${url}: asked for bytes from ${start}, got Content-Range "${header('content-range')}"`, false);
    }
    return { body, size: range[3] === '*' ? undefined : Number(range[3]), version: seen ?? version };
  }
  const length = header('content-length');
  const size = length === undefined ? undefined : Number(length);
  if (start === 0) return { body, size, version: seen };
  // 200 to a ranged request: the object changed (If-Range failed) or the server ignores Range.
  if (version !== undefined && seen !== undefined && seen !== version) {
    res.destroy();
    throw new FetchError(`${url}: the shard changed while it was read (was ${version}, now ${seen}); its samples cannot be resumed`, false);
  }
  return { body: dropping(body, start), size, version: seen ?? version };
};

/** A network error's innermost cause, which names what happened (ECONNRESET, "other side closed"). */
export function describeNetworkError(err: unknown): string {
  let e = err;
  const parts: string[] = [];
  while (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    parts.push(code ? `${e.message} (${code})` : e.message);
    e = e.cause;
  }
  return parts.length > 0 ? parts.slice(-2).join(': ') : String(err);
}

/** What the S3 client needs beyond the standard credential chain and region. */
export interface S3Settings {
  /** An S3-compatible store (MinIO, Ceph, R2…): path-style requests to this URL. Default `AWS_ENDPOINT_URL`. */
  endpoint?: string;
}

type S3Module = typeof S3Sdk;
let s3Module: Promise<S3Module> | undefined;

interface S3ErrorShape {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string | undefined> };
}

export function s3RangeFetcher(settings: S3Settings = {}): RangeFetcher {
  const endpoint = settings.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  let client: Promise<{ sdk: S3Module; client: InstanceType<S3Module['S3Client']> }> | undefined;
  const open = () => {
    client ??= (async () => {
      // The SDK warns on every Node 20 process that its releases after January 2027 will need
      // Node 22; the version pinned here supports Node 20, so the warning would only be noise.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      s3Module ??= import('@aws-sdk/client-s3');
      const sdk = await s3Module;
      return {
        sdk,
        client: new sdk.S3Client({
          ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
          region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
          maxAttempts: 1, // shardBytes retries, resuming where a read stopped
        }),
      };
    })();
    return client;
  };
  return async (shard, start, version, signal) => {
    const { sdk, client: s3 } = await open();
    const { bucket, key } = parseS3Url(shard.location);
    try {
      const out = await s3.send(
        new sdk.GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(start > 0 ? { Range: `bytes=${start}-` } : {}),
          ...(version ? { IfMatch: version } : {}),
        }),
        { abortSignal: signal },
      );
      if (!out.Body) throw new FetchError(`${shard.location}: no body`, true);
      const range = out.ContentRange ? /\/(\d+)$/.exec(out.ContentRange) : null;
      const size = range ? Number(range[1]) : out.ContentLength !== undefined ? start + out.ContentLength : undefined;
      return { body: out.Body as Readable, size, version: out.ETag ?? version };
    } catch (err) {
      if (err instanceof FetchError) throw err;
      const e = err as S3ErrorShape;
      const status = e.$metadata?.httpStatusCode;
      if (status === 416 && start > 0) return { body: EMPTY, size: start, version };
      if (status === 412)
        throw new FetchError(
          `${shard.location}: the shard changed while it was read (ETag was ${version}); its samples cannot be resumed`,
          false,
          status,
        );
      if (status === undefined) throw new FetchError(`${shard.location}: ${describeNetworkError(err)}`, true);
      const headers = e.$response?.headers ?? {};
      throw new FetchError(
        `${shard.location}: HTTP ${status}${e.name ? ` ${e.name}` : ''}`,
        retryableStatus(status),
        status,
        parseRetryAfter(headers['retry-after']),
      );
    }
  };
}
