/**
 * `eval.json`, where `densestream eval` files its scores in a run folder (or `--out`): data set
 * → protocol → the model evaluated and its scores, each protocol's record replaced whole; and
 * the one JSON line eval prints. `densestream report` reads the same file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../core/config-error.js';
import { writeFileAtomic } from '../core/atomic-file.js';
import type { Protocol } from './eval-options.js';
import type { EvalResults, Evaluation } from './eval-protocols.js';
import { prepareOutFolder } from './out-folder.js';

/** Saved evaluations: data set → protocol → the model evaluated and its scores. */
export type SavedEvaluations = Record<string, Partial<Record<Protocol, EvalResults>>>;

/** Reads `DIR/eval.json` (empty when absent); a file that is not such JSON is refused before any work. */
export function readEvaluations(dir: string): SavedEvaluations {
  const path = join(dir, 'eval.json');
  if (!existsSync(path)) return {};
  try {
    const saved = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) throw new Error('not an object');
    return saved as SavedEvaluations;
  } catch (err) {
    throw new ConfigError(
      `--out: ${path} is not an eval.json this job can add to (${err instanceof Error ? err.message : String(err)}); move it away`,
    );
  }
}

/** The key of `eval.json` an evaluation is filed under: the data set, with `(val)` for validation scores. */
function evaluationKey(model: EvalResults): string {
  return model['split'] === 'val' ? `${String(model['data'])} (val)` : String(model['data']);
}

/**
 * Records `evaluation` in `DIR/eval.json`: each protocol's entry is replaced whole, with the
 * model it scored, so scores of different checkpoints or steps never share a record, and
 * validation scores are filed apart from test scores (`evaluationKey`).
 */
export function saveEvaluation(dir: string, evaluation: Evaluation): string {
  const saved = readEvaluations(dir);
  const key = evaluationKey(evaluation.model);
  const entry = saved[key] ?? {};
  for (const [p, scores] of Object.entries(evaluation.protocols)) entry[p as Protocol] = { ...evaluation.model, ...scores };
  saved[key] = entry;
  prepareOutFolder(dir);
  const path = join(dir, 'eval.json');
  writeFileAtomic(path, `${JSON.stringify(saved, null, 2)}\n`);
  return path;
}

/** One JSON line: the model, every score, and the images each protocol used. */
export function evaluationLine(evaluation: Evaluation): EvalResults {
  const line: EvalResults = { ...evaluation.model };
  const images: Record<string, number | null> = {};
  for (const [p, { trainImages, testImages, ...scores }] of Object.entries(evaluation.protocols)) {
    Object.assign(line, scores);
    images[`${p}Train`] = trainImages as number;
    images[`${p}Test`] = testImages as number;
  }
  return { ...line, images, skipped: evaluation.skipped };
}
