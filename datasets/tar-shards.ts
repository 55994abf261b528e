/**
 * `tar:PATTERN` — WebDataset-style shards: `shard-{000..099}.tar`, each a tar of samples whose
 * files share a key (`dir/0001.jpg`, `dir/0001.cls`, `dir/0001.json`). A stream source: it
 * reads shards front to back (shard order shuffled per epoch) through a seeded shuffle
 * buffer, holding at most `shuffleBuffer` encoded samples.
 */
import braces from 'braces';
import { createReadStream, existsSync } from 'node:fs';
import { basename } from 'node:path';
import { extract } from 'tar-stream';
import { keyedRng, shuffleInPlace, type Sample, type SkipRecord } from '../core/index.js';
import type { EpochOptions, StreamSource } from './source.js';

const IMAGE_EXT = new Set(['jpg', 'jpeg', 'png', 'webp', 'tif', 'tiff', 'gif', 'avif']);

/** `shard-{000..002}.tar` → the three file names, checked to exist. */
export function expandShardPattern(pattern: string): string[] {
  const files = braces.expand(pattern);
  const missing = files.filter((f) => !existsSync(f));
  if (files.length === 0 || missing.length === files.length) throw new Error(`tar:${pattern}: no shard found`);
  if (missing.length > 0) throw new Error(`tar:${pattern}: ${missing.length} of ${files.length} shards missing, e.g. ${missing[0]}`);
  return files;
}

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

/** The sample groups of one tar, in archive order. */
async function* groups(file: string): AsyncGenerator<Group> {
  const archive = extract();
  createReadStream(file)
    .on('error', (err) => archive.destroy(err))
    .pipe(archive);
  let current: Group | undefined;
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
  if (current) yield current;
}

function toSample(shard: string, group: Group): Sample {
  const id = `${basename(shard)}:${group.key}`;
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

export interface TarOptions {
  /** Samples held for shuffling (default 1 000; 0 keeps archive order). */
  shuffleBuffer?: number;
}

export function tarShardsSource(pattern: string, options: TarOptions = {}): StreamSource {
  const files = expandShardPattern(pattern);
  const bufferSize = options.shuffleBuffer ?? 1000;
  return {
    name: `tar:${pattern} (${files.length} shards)`,
    async *samples(epoch: EpochOptions = {}, onSkip?: (r: SkipRecord) => void) {
      const { seed = 0, epoch: e = 0, shard = { index: 0, count: 1 }, shuffle = true, skip = 0, limit = Infinity } = epoch;
      const rng = keyedRng(seed, 'tar-order', e, shard.index, shard.count);
      const order = [...files];
      if (shuffle) shuffleInPlace(order, rng);
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
      for (const f of order) {
        for await (const group of groups(f)) {
          // Membership hangs on the id alone, so --shard i/n partitions exactly in any order.
          const id = `${basename(f)}:${group.key}`;
          if (shard.count > 1 && keyedRng('shard', id).int(shard.count) !== shard.index) continue;
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
          const k = rng.int(bufferSize);
          const picked = buffer[k] as Sample;
          buffer[k] = sample;
          yield* out(picked);
          if (emitted >= limit) return;
        }
      }
      shuffleInPlace(buffer, rng);
      for (const s of buffer) yield* out(s);
    },
  };
}
