/**
 * `metrics.jsonl`: one JSON object per logged step, appended as training goes. A resumed run
 * first cuts the log back to its checkpoint's step, so no step appears twice.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../core/atomic-file.js';

export class MetricsLog {
  constructor(readonly path: string) {}

  /** Appends one record as a line. */
  append(record: object): void {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }

  /**
   * Drops the lines of steps after `step` (a run killed after its last checkpoint had logged
   * steps it will now train again) and any line cut short by the kill. Rewritten atomically.
   */
  cutBack(step: number): void {
    if (!existsSync(this.path)) return;
    const lines = readFileSync(this.path, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '');
    const kept = lines.filter((line) => {
      try {
        const record = JSON.parse(line) as { step?: unknown };
        return typeof record.step === 'number' && record.step <= step;
      } catch {
        return false;
      }
    });
    if (kept.length !== lines.length) writeFileAtomic(this.path, kept.map((l) => `${l}\n`).join(''));
  }
}
