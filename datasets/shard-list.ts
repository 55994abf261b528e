/**
 * Where WebDataset shards live: the `tar:` argument expanded into shard locations.
 *
 * - a brace pattern over local paths, `http(s)://` URLs or `s3://bucket/key` URLs:
 *   `s3://corpus/train/shard-{000..099}.tar`;
 * - `@FILE`: a text file with one location per line (blank lines and `#` comments ignored),
 *   each line itself a pattern, the way large corpora publish their shard lists.
 *
 * Local shards are checked up front (a typo fails before any work); remote ones are not, since
 * a corpus may hold thousands: a missing remote shard is found when it is read, and
 * `--on-missing-shard` decides what that means for the job.
 */
import braces from 'braces';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';

export type ShardScheme = 'file' | 'http' | 's3';

export interface ShardLocation {
  scheme: ShardScheme;
  /** The path or URL as given after expansion. */
  location: string;
  /** The shard's file name: with the member key it makes a sample's id, so it must not depend on the host. */
  name: string;
}

export function shardScheme(location: string): ShardScheme {
  if (/^https?:\/\//i.test(location)) return 'http';
  if (/^s3:\/\//i.test(location)) return 's3';
  return 'file';
}

/** The last segment of a path or a URL's path (query and fragment dropped). */
function shardName(location: string, scheme: ShardScheme): string {
  const path = scheme === 'file' ? location : new URL(location).pathname;
  return decodeURIComponent(path.slice(path.lastIndexOf('/') + 1));
}

/** `s3://bucket/key…` → bucket and key, or a message naming what is missing. */
export function parseS3Url(url: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/i.exec(url);
  if (!m) throw new Error(`${url}: expected s3://BUCKET/KEY`);
  return { bucket: m[1] as string, key: m[2] as string };
}

function patternsOf(pattern: string): string[] {
  if (!pattern.startsWith('@')) return [pattern];
  const file = pattern.slice(1);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`tar:${pattern}: cannot read the shard list (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  // A relative local path in a list is relative to the list, as in a playlist.
  return text
    .split(/\r?\n/)
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter((line) => line.length > 0)
    .map((line) => (shardScheme(line) === 'file' && !isAbsolute(line) ? join(dirname(file), line) : line));
}

/** Every shard `pattern` names, in the order given; local ones checked to exist. */
export function expandShardPattern(pattern: string): ShardLocation[] {
  const locations = patternsOf(pattern).flatMap((p) => braces.expand(p));
  if (locations.length === 0) throw new Error(`tar:${pattern}: no shard found`);
  const shards = locations.map((location) => {
    const scheme = shardScheme(location);
    if (scheme === 's3') parseS3Url(location);
    else if (scheme === 'http') {
      try {
        new URL(location);
      } catch {
        throw new Error(`tar:${pattern}: ${location} is not a URL`);
      }
    }
    return { scheme, location, name: shardName(location, scheme) };
  });
  const local = shards.filter((s) => s.scheme === 'file');
  const missing = local.filter((s) => !existsSync(s.location));
  if (missing.length > 0 && missing.length === shards.length) throw new Error(`tar:${pattern}: no shard found`);
  if (missing.length > 0)
    throw new Error(`tar:${pattern}: ${missing.length} of ${local.length} local shards missing, e.g. ${missing[0]?.location}`);
  const names = new Map<string, string>();
  for (const s of shards) {
    const other = names.get(s.name);
    // Sample ids are `shard-name:key`; two shards of one name would give two samples one id.
    if (other !== undefined)
      throw new Error(`tar:${pattern}: two shards share the name ${s.name} (${other}, ${s.location}); sample ids would collide`);
    names.set(s.name, s.location);
  }
  return shards;
}
