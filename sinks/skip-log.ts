/**
 * `skipped.jsonl`: one JSON line per input a job dropped (DESIGN.md, "Errors"), written as it
 * happens so a killed job still leaves its record. `close()` resolves with the count, for the
 * job's closing message ("3 files skipped (see runs/a/skipped.jsonl)").
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { SkipRecord } from '../operators/types/index.js';

export interface SkipLog {
  readonly path: string;
  record(entry: SkipRecord): void;
  /** Flushes and closes; resolves with how many records were written. */
  close(): Promise<number>;
}

export function openSkipLog(path: string): SkipLog {
  const stream: WriteStream = createWriteStream(path, { flags: 'a' });
  let count = 0;
  let failure: Error | undefined;
  stream.on('error', (err) => { failure = err; });
  return {
    path,
    record(entry) {
      count++;
      stream.write(`${JSON.stringify({ id: entry.id, stage: entry.stage, reason: entry.reason })}\n`);
    },
    close: () =>
      new Promise<number>((resolve, reject) => {
        stream.end(() => (failure ? reject(new Error(`${path}: ${failure.message}`)) : resolve(count)));
      }),
  };
}

/** The line a job prints when it skipped inputs, naming the log. */
export function skipSummary(source: string, count: number, log: SkipLog): string {
  return `${source}: ${count} input${count === 1 ? '' : 's'} skipped (see ${log.path})`;
}
