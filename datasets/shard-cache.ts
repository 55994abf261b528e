/**
 * `--cache DIR --cache-size GB`: remote shards kept on local disk, so a later epoch reads them
 * from there. A shard enters the cache only whole: its bytes go to a temporary file while they
 * stream to the reader, and the file is renamed into place only when the transfer ended at the
 * size the server announced (a shard of unknown size is streamed, not cached). An entry's name
 * holds its size and SHA-256, checked before it is read; an entry that fails the check is
 * dropped and the shard read from its source again. Least recently used entries are evicted to
 * stay within the size. Several processes may share a folder: entries appear by rename, and a
 * reader holds its entry open, so another process's eviction does not cut it short.
 *
 * The cache never stops a job: if its folder cannot be written (full disk, permissions), the
 * shard streams on from its source uncached. Shards are taken as immutable, as WebDataset and
 * MosaicML Streaming take them: a republished shard under the same URL is served from its old
 * copy until evicted, so clear the folder when republishing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { ShardReadInfo } from './shard-bytes.js';
import type { ShardLocation } from './shard-list.js';

export interface ShardCacheOptions {
  dir: string;
  /** Bytes the cache may hold. */
  maxBytes: number;
}

const SUFFIX = '.tar';
/** Partial files of transfers not written to for this long were left by a killed process. */
const STALE_PARTIAL_MS = 3600_000;

export class ShardCache {
  private ready: Promise<boolean> | undefined;

  constructor(readonly options: ShardCacheOptions) {}

  /** Entries are `KEY.SIZE.SHA256.tar`, KEY a hash of the location: any URL maps to a safe name. */
  key(shard: ShardLocation): string {
    return createHash('sha256').update(shard.location).digest('hex').slice(0, 32);
  }

  /** Whether the folder exists or could be made; asked once. */
  private usable(): Promise<boolean> {
    this.ready ??= mkdir(this.options.dir, { recursive: true }).then(
      () => true,
      () => false,
    );
    return this.ready;
  }

  /** The shard's whole, verified entry, open for reading, if the cache holds one; a damaged entry is removed. */
  async lookup(shard: ShardLocation): Promise<FileHandle | undefined> {
    const key = this.key(shard);
    const name = (await readdir(this.options.dir).catch(() => [] as string[])).find((n) => n.startsWith(`${key}.`) && n.endsWith(SUFFIX));
    if (!name) return undefined;
    const [, size, digest] = name.slice(0, -SUFFIX.length).split('.');
    const path = join(this.options.dir, name);
    const file = await open(path, 'r').catch(() => undefined); // evicted meanwhile by another process
    if (!file) return undefined;
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      for await (const chunk of file.createReadStream({ start: 0, autoClose: false }) as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        bytes += chunk.byteLength;
      }
    } catch {
      await file.close();
      return undefined;
    }
    if (String(bytes) === size && hash.digest('hex') === digest) {
      const now = new Date();
      await utimes(path, now, now).catch(() => undefined); // recency for the LRU
      return file;
    }
    await file.close();
    await unlink(path).catch(() => undefined);
    return undefined;
  }

  /**
   * The shard's bytes: from the cache when a whole copy is there, otherwise from `fetch`,
   * copied into the cache on the way when the shard fits.
   */
  async *bytes(shard: ShardLocation, fetch: (info: ShardReadInfo) => AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    const usable = await this.usable();
    const hit = usable ? await this.lookup(shard) : undefined;
    if (hit) {
      try {
        yield* hit.createReadStream({ start: 0, autoClose: false }) as AsyncIterable<Uint8Array>;
      } finally {
        await hit.close();
      }
      return;
    }
    const key = this.key(shard);
    const temp = join(this.options.dir, `${key}.${process.pid}.${randomBytes(4).toString('hex')}.partial`);
    let out: FileHandle | undefined = usable ? await open(temp, 'w').catch(() => undefined) : undefined;
    const drop = async () => {
      await out?.close().catch(() => undefined);
      out = undefined;
      await unlink(temp).catch(() => undefined);
    };
    const hash = createHash('sha256');
    const info: ShardReadInfo = {};
    let written = 0;
    let complete = false;
    try {
      for await (const chunk of fetch(info)) {
        if (out) {
          written += chunk.byteLength;
          if (written > this.options.maxBytes)
            await drop(); // larger than the whole cache: stream it on uncached
          else {
            hash.update(chunk);
            // A write that fails (disk full) costs the copy, not the shard.
            await out.write(chunk).catch(drop);
          }
        }
        yield chunk;
      }
      complete = true;
    } finally {
      if (out && complete && info.size !== undefined && info.size === written) {
        const file = join(this.options.dir, `${key}.${written}.${hash.digest('hex')}${SUFFIX}`);
        const kept = await out
          .sync()
          .then(() => out?.close())
          .then(() => rename(temp, file))
          .then(
            () => true,
            () => false,
          );
        if (kept) await this.evict(file).catch(() => undefined);
        else await unlink(temp).catch(() => undefined);
      } else await drop();
    }
  }

  /**
   * Removes least recently used entries (never `keep`) until the cache is within its size, and
   * the partial files of transfers that stopped (a killed process) over an hour ago.
   */
  async evict(keep?: string): Promise<void> {
    const all = await readdir(this.options.dir);
    const stale = Date.now() - STALE_PARTIAL_MS;
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
