/**
 * A command's output folder, made ready before any work, or refused with a message that names
 * what is wrong with it: a part of the path that is a file, a folder that cannot be created,
 * one that cannot be written in.
 */
import { mkdirSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { join, parse, resolve, sep } from 'node:path';
import { ConfigError } from '../core/config-error.js';

const code = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));

/**
 * Creates `dir` and its missing parents, then writes and removes a probe file in it.
 * Bounded: one `stat` and at most one `mkdir` per path component. Not
 * `mkdirSync(dir, { recursive: true })`: Node 20's loops forever, at full CPU and deaf to
 * Ctrl-C, under a path that cannot hold folders (`/proc/x`).
 */
export function prepareOutFolder(dir: string, flag = '--out'): void {
  const absolute = resolve(dir);
  const { root } = parse(absolute);
  let path = root;
  for (const part of absolute
    .slice(root.length)
    .split(sep)
    .filter((p) => p !== '')) {
    path = join(path, part);
    let stats: Stats | undefined;
    try {
      stats = statSync(path);
    } catch (err) {
      if (code(err) !== 'ENOENT') throw new ConfigError(`${flag} ${dir}: cannot look at ${path} (${code(err)})`);
    }
    if (stats && !stats.isDirectory()) throw new ConfigError(`${flag} ${dir}: ${path} is a file, not a folder`);
    if (stats) continue;
    try {
      mkdirSync(path);
    } catch (err) {
      if (code(err) !== 'EEXIST') throw new ConfigError(`${flag} ${dir}: cannot create the folder ${path} (${code(err)})`);
    }
  }
  const probe = join(absolute, `.densestream-probe-${process.pid}`);
  try {
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (err) {
    throw new ConfigError(`${flag} ${dir}: cannot write in it (${code(err)})`);
  }
}
