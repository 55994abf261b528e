/**
 * `manifest.json`: what a job wrote and how (DESIGN.md, "Outputs"): its configuration, seed,
 * library versions, and every finished part with its files' row counts and checksums. It is
 * rewritten (atomically) after each part, so it is also the job's resume point: a part is
 * done when the manifest lists it and its files are on disk at the listed sizes.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import type { WrittenFile } from './table-file.js';

export interface ManifestPart {
  part: number;
  /** Source positions this part covers (rows written + inputs skipped). */
  samples: number;
  /** Samples written (a table may hold several rows per sample: views, cells). */
  rows: number;
  skipped: number;
  /** Remote shards passed over (`--on-missing-shard skip`) while this part's positions were read: a re-run must find the same. */
  shardsPassed?: string[];
  /** One file per table, by table name; `file` relative to the output folder. */
  files: Record<string, WrittenFile>;
}

export interface Manifest {
  format: 'densestream-manifest';
  version: 1;
  job: string;
  /** The arguments that decide the output; a re-run must give the same. */
  config: Record<string, unknown>;
  seed: number;
  shard: { index: number; count: number };
  versions: Record<string, string>;
  parts: ManifestPart[];
  /** Every part written: the shard is finished. */
  complete: boolean;
  createdAt: string;
  updatedAt: string;
}

/** `manifest.json`, or `manifest-1of3.json` for shard 1 of 3 (shards may share a folder). */
export function manifestName(shard: { index: number; count: number }): string {
  return shard.count === 1 ? 'manifest.json' : `manifest-${shard.index}of${shard.count}.json`;
}

export function readManifest(path: string): Manifest | undefined {
  if (!existsSync(path)) return undefined;
  const m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  if (m.format !== 'densestream-manifest') throw new Error(`${path}: not a densestream manifest`);
  return m;
}

export function writeManifest(path: string, m: Manifest): void {
  writeFileAtomic(path, `${JSON.stringify(m, null, 2)}\n`);
}

/** A listed part whose files are all present at their listed sizes. */
export function partIsDone(dir: string, part: ManifestPart | undefined): boolean {
  if (!part) return false;
  return Object.values(part.files).every((f) => {
    const path = join(dir, f.file);
    return existsSync(path) && statSync(path).size === f.bytes;
  });
}

/** The first configuration key whose value differs, or undefined when they agree. */
export function configDifference(a: Record<string, unknown>, b: Record<string, unknown>): string | undefined {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of [...keys].sort()) if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) return k;
  return undefined;
}
