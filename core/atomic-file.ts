/**
 * Output files are written under a temporary name and renamed when complete (DESIGN.md,
 * "Outputs"): a file under its final name is whole, whatever killed the job and when.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The temporary name of `path` while this process writes it. */
export function partialPath(path: string): string {
  return `${path}.partial-${process.pid}`;
}

/** Writes `data` to `path` through a temporary file. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const partial = partialPath(path);
  writeFileSync(partial, data);
  renameSync(partial, path);
}

/** Removes the leftovers of killed writers: files in `dir` named `….partial-<pid>` that `mine` claims. */
export function removePartials(dir: string, mine: (name: string) => boolean): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (/\.partial-\d+$/.test(name) && mine(name)) {
      rmSync(join(dir, name), { force: true });
      removed.push(name);
    }
  }
  return removed;
}

/** Hex SHA-256 of a file, streamed. */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
