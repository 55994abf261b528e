/**
 * `--cache DIR --cache-size GB`: remote shards kept on local disk, so a second epoch reads
 * them from there. A shard enters the cache only whole: its bytes go to a temporary file while
 * they stream to the reader, and the file is renamed into place only when the transfer ended
 * at the size the server gave. An entry's name holds its size and SHA-256, checked before it is
 * read; an entry that fails the check is dropped and the shard read from its source again. Least recently used entries are evicted to stay
 * within the size. Several processes may share a folder: entries appear by rename, and an
 * evicted file stays readable to a process that has it open.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { ShardLocation } from './shard-list.js';

export interface ShardCacheOptions {
  dir: string;
  /** Bytes the cache may hold. */
  maxBytes: number;
}

const SUFFIX = '.tar';

export class ShardCache {
  private readonly ready: Promise<void>;

  constructor(readonly options: ShardCacheOptions) {
    this.ready = mkdir(options.dir, { recursive: true }).then(() => undefined);
  }

  /** Entries are `KEY.SIZE.SHA256.tar`, KEY a hash of the location: any URL maps to a safe name. */
  key(shard: ShardLocation): string {
    return createHash('sha256').update(shard.location).digest('hex').slice(0, 32);
  }

  /** The shard's whole, verified entry, if the cache holds one; a damaged entry is removed. */
  async lookup(shard: ShardLocation): Promise<string | undefined> {
    const key = this.key(shard);
    const name = (await readdir(this.options.dir)).find((n) => n.startsWith(`${key}.`) && n.endsWith(SUFFIX));
    if (!name) return undefined;
    const [, size, digest] = name.slice(0, -SUFFIX.length).split('.');
    const path = join(this.options.dir, name);
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      for await (const chunk of createReadStream(path) as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        bytes += chunk.byteLength;
      }
    } catch {
      return undefined; // evicted by another process meanwhile
    }
    if (String(bytes) === size && hash.digest('hex') === digest) return path;
    await unlink(path).catch(() => undefined);
    return undefined;
  }

  /**
   * The shard's bytes: from the cache when a whole copy is there, otherwise from `fetch`,
   * copied into the cache on the way when the shard fits.
   */
  async *bytes(shard: ShardLocation, fetch: () => AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    await this.ready;
    const hit = await this.lookup(shard);
    if (hit) {
      const now = new Date();
      await utimes(hit, now, now).catch(() => undefined); // recency for the LRU
      yield* createReadStream(hit) as AsyncIterable<Uint8Array>;
      return;
    }
    const key = this.key(shard);
    const temp = join(this.options.dir, `${key}.${process.pid}.${randomBytes(4).toString('hex')}.partial`);
    let out: FileHandle | undefined = await open(temp, 'w');
    const hash = createHash('sha256');
    let written = 0;
    let complete = false;
    try {
      for await (const chunk of fetch()) {
        if (out) {
          written += chunk.byteLength;
          if (written > this.options.maxBytes) {
            // Larger than the whole cache: stream it on without keeping a copy.
            await out.close();
            out = undefined;
            await unlink(temp).catch(() => undefined);
          } else {
            hash.update(chunk);
            await out.write(chunk);
          }
        }
        yield chunk;
      }
      complete = true;
    } finally {
      if (out) {
        // `fetch` ends normally only with every byte the server announced (shardBytes).
        const whole = complete;
        if (whole) await out.sync();
        await out.close();
        if (whole) {
          const file = join(this.options.dir, `${key}.${written}.${hash.digest('hex')}${SUFFIX}`);
          await rename(temp, file);
          await this.evict(file);
        } else await unlink(temp).catch(() => undefined);
      }
    }
  }

  /**
   * Removes least recently used entries (never `keep`) until the cache is within its size, and
   * the partial files of transfers that stopped (a killed process) over an hour ago.
   */
  async evict(keep?: string): Promise<void> {
    const all = await readdir(this.options.dir);
    const stale = Date.now() - 3600_000;
    for (const n of all.filter((x) => x.endsWith('.partial'))) {
      const path = join(this.options.dir, n);
      const s = await stat(path).catch(() => undefined);
      if (s && s.mtimeMs < stale) await unlink(path).catch(() => undefined);
    }
    const names = all.filter((n) => n.endsWith(SUFFIX));
    const entries = (
      await Promise.all(
        names.map(async (n) => {
          const path = join(this.options.dir, n);
          const s = await stat(path).catch(() => undefined);
          return s ? { path, size: s.size, used: s.mtimeMs } : undefined;
        }),
      )
    ).filter((e) => e !== undefined);
    let total = entries.reduce((sum, e) => sum + e.size, 0);
    entries.sort((a, b) => a.used - b.used);
    for (const e of entries) {
      if (total <= this.options.maxBytes) break;
      if (e.path === keep) continue;
      await unlink(e.path).catch(() => undefined);
      total -= e.size;
    }
  }
}
