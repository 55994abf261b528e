/**
 * A loopback HTTP server for remote-shard tests and `bench remote` that misbehaves on purpose. It serves objects
 * by path (from memory or from a file on disk) with `Range`, `If-Range` and `If-Match` as
 * a real server or an S3-compatible store (path-style `/bucket/key`) does, and before each
 * response asks `plan` what to do wrong: cut the connection at a byte, answer a status
 * (500, 503, 429, with Retry-After), or stall. Every request is logged.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault =
  /** Send the headers and this many body bytes, then destroy the socket. */
  | { kind: 'cut'; after: number }
  | { kind: 'status'; status: number; retryAfter?: string }
  /** Send this many body bytes, then nothing for `ms`, then the rest. */
  | { kind: 'stall'; after: number; ms: number };

export interface Served {
  path: string;
  /** First byte asked for (0 without Range). */
  start: number;
  status: number;
  fault?: Fault['kind'];
}

type Body = Buffer | { file: string };

export class FaultServer {
  readonly objects = new Map<string, Body>();
  readonly log: Served[] = [];
  /** What to do wrong with the n-th request for `path` (n from 0); undefined: serve it well. */
  plan: (path: string, n: number, start: number) => Fault | undefined = () => undefined;
  private server?: Server;
  private readonly counts = new Map<string, number>();

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.serve(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Forgets the log, the request counts and the plan: each test starts from a well-behaved server. */
  reset(): void {
    this.log.length = 0;
    this.counts.clear();
    this.plan = () => undefined;
  }

  requests(path: string): Served[] {
    return this.log.filter((r) => r.path === path);
  }

  private size(body: Body): number {
    return Buffer.isBuffer(body) ? body.length : statSync(body.file).size;
  }

  private etag(path: string, body: Body): string {
    const what = Buffer.isBuffer(body) ? body : `${body.file}:${statSync(body.file).mtimeMs}`;
    return `"${createHash('sha1').update(path).update(what).digest('hex').slice(0, 16)}"`;
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const body = this.objects.get(path);
    const n = this.counts.get(path) ?? 0;
    this.counts.set(path, n + 1);
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const etag = body ? this.etag(path, body) : '';
    const ifRange = req.headers['if-range'];
    const ifMatch = req.headers['if-match'];
    let start = range ? Number(range[1]) : 0;
    if (ifRange !== undefined && ifRange !== etag) start = 0;
    const entry: Served = { path, start, status: 0 };
    this.log.push(entry);
    const fault = this.plan(path, n, start);
    const answer = (status: number, headers: Record<string, string> = {}, text = '') => {
      entry.status = status;
      res.writeHead(status, { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(text)), ...headers });
      res.end(text);
    };
    if (!body) return answer(404, {}, '<Error><Code>NoSuchKey</Code><Message>not found</Message></Error>');
    if (ifMatch !== undefined && ifMatch !== etag) return answer(412, {}, '<Error><Code>PreconditionFailed</Code></Error>');
    if (fault?.kind === 'status') {
      entry.fault = 'status';
      const code = fault.status === 429 ? 'SlowDown' : 'InternalError';
      return answer(
        fault.status,
        fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {},
        `<Error><Code>${code}</Code></Error>`,
      );
    }
    const size = this.size(body);
    if (start >= size && size > 0) return answer(416, { 'content-range': `bytes */${size}` });
    const partial = start > 0;
    entry.status = partial ? 206 : 200;
    res.writeHead(entry.status, {
      'content-type': 'application/x-tar',
      'content-length': String(size - start),
      'accept-ranges': 'bytes',
      etag,
      ...(partial ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    // The body from `offset` bytes past `start` to its end.
    const sendFrom = (offset: number) => {
      if (Buffer.isBuffer(body)) res.end(body.subarray(start + offset));
      else createReadStream(body.file, { start: start + offset }).pipe(res);
    };
    if (!fault) return sendFrom(0);
    entry.fault = fault.kind;
    const length = Math.min(fault.after, size - start);
    const head = Buffer.isBuffer(body) ? body.subarray(start, start + length) : readRange(body.file, start, length);
    res.write(head, () => {
      if (fault.kind === 'cut') {
        res.socket?.destroy();
        return;
      }
      setTimeout(() => {
        if (!res.destroyed) sendFrom(head.length);
      }, fault.ms).unref();
    });
  }
}

function readRange(file: string, start: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const out = Buffer.alloc(length);
    readSync(fd, out, 0, length, start);
    return out;
  } finally {
    closeSync(fd);
  }
}
