/**
 * A training run's folder (`train --out`): the files a run and the commands that read it write
 * there, and the rule that a second `train` into it neither mixes with nor silently replaces
 * the first. Other files in the folder are the user's and are never touched.
 */
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../core/config-error.js';

/**
 * What belongs to a run: the checkpoint (and the trainer's swap-in copies of it), the metrics,
 * the skip log, `eval`'s scores and `report`'s page.
 */
export const RUN_FILES = [
  'checkpoint',
  'checkpoint.partial',
  'checkpoint.old',
  'metrics.jsonl',
  'skipped.jsonl',
  'eval.json',
  'report.html',
] as const;

/** The run files present in `dir` (folders with a trailing slash). */
export function runFilesIn(dir: string): string[] {
  return RUN_FILES.filter((f) => existsSync(join(dir, f))).map((f) => (f.startsWith('checkpoint') ? `${f}/` : f));
}

/**
 * Checks `dir` for a new run, before any work: refuses a folder that already holds one unless
 * `overwrite`. Returns the run files `overwrite` will replace; the caller removes them with
 * {@link removeRunFiles} only once the new run's every option has held, so a refused run loses
 * nothing. Other files in the folder are never touched.
 */
export function checkRunFolder(dir: string, overwrite: boolean): string[] {
  const found = runFilesIn(dir);
  if (found.length > 0 && !overwrite) {
    // A run that stopped before its first checkpoint (a source that could not be read) left only
    // its skip log: there is nothing to resume.
    const resumable = found.some((f) => f.startsWith('checkpoint'));
    throw new ConfigError(
      resumable
        ? `--out ${dir} already holds a run (${found.join(', ')}): continue it with --resume, replace it with --overwrite, or give another --out`
        : `--out ${dir} holds a run that stopped before its first checkpoint (${found.join(', ')}): replace it with --overwrite, or give another --out`,
    );
  }
  return found;
}

/** Removes a previous run's files, as {@link checkRunFolder} found them. */
export function removeRunFiles(dir: string, files: readonly string[]): void {
  for (const f of files) rmSync(join(dir, f), { recursive: true, force: true });
}

/** `RUN` or `RUN/checkpoint` → the checkpoint folder, or a ConfigError naming the flag. */
export function checkpointDir(path: string, field = '--checkpoint'): string {
  for (const dir of [join(path, 'checkpoint'), path]) if (existsSync(join(dir, 'weights.json'))) return resolve(dir);
  throw new ConfigError(
    `${field}: no checkpoint in ${path} (expected ${join(path, 'checkpoint', 'weights.json')}, written by densestream train)`,
  );
}

/** The RUN of an `--attention encoder:RUN`, undefined for any other value; an empty RUN is refused. */
export function encoderRunOf(value: string | undefined, field = '--attention'): string | undefined {
  if (!value?.startsWith('encoder:')) return undefined;
  const run = value.slice('encoder:'.length);
  if (!run) throw new ConfigError(`${field}: encoder needs a train run, e.g. encoder:runs/densecl`);
  return run;
}
