/**
 * `skipped.jsonl`: one JSON line per input a job dropped (DESIGN.md, "Errors"), written as it
 * happens so a killed job still leaves its record. `close()` resolves with the count of inputs
 * dropped, for the job's closing message ("3 inputs skipped (see runs/a/skipped.jsonl)"). The
 * log also holds notes on inputs that stayed: a fallback (no attention map, an empty mask) is
 * not a skip, and is counted apart; so is a remote read that was retried (stage `fetch`), which
 * lost nothing. A remote shard passed over (stage `shard`) is one record for all its inputs.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { SkipRecord } from '../core/index.js';

/** Stages whose records note a fallback on a sample that stayed in the stream. */
export const NOTE_STAGES: ReadonlySet<string> = new Set(['mask', 'attention-view']);

export interface SkipLog {
  readonly path: string;
  record(entry: SkipRecord): void;
  /** Records so far that are notes ({@link NOTE_STAGES}), not inputs dropped. */
  readonly notes: number;
  /** Remote reads retried so far (stage `fetch`). */
  readonly retries: number;
  /** Flushes and closes; resolves with how many inputs were dropped (notes not counted). */
  close(): Promise<number>;
}

export function openSkipLog(path: string): SkipLog {
  // Opened on the first record (or at close): a job refused before its first input leaves no
  // file behind, so its --out is not taken for a run's.
  let stream: WriteStream | undefined;
  let count = 0;
  let notes = 0;
  let retries = 0;
  let failure: Error | undefined;
  const open = (): WriteStream => {
    if (!stream) {
      stream = createWriteStream(path, { flags: 'a' });
      stream.on('error', (err) => {
        failure = err;
      });
    }
    return stream;
  };
  return {
    path,
    get notes() {
      return notes;
    },
    get retries() {
      return retries;
    },
    record(entry) {
      if (NOTE_STAGES.has(entry.stage)) notes++;
      else if (entry.stage === 'fetch') retries++;
      else count++;
      open().write(`${JSON.stringify({ id: entry.id, stage: entry.stage, reason: entry.reason })}\n`);
    },
    close: () =>
      new Promise<number>((resolve, reject) => {
        open().end(() => (failure ? reject(new Error(`${path}: ${failure.message}`)) : resolve(count)));
      }),
  };
}

/** The line a job prints when it skipped inputs, naming the log. */
export function skipSummary(source: string, count: number, log: SkipLog): string {
  const notes = log.notes > 0 ? `, ${log.notes} fallback${log.notes === 1 ? '' : 's'} noted` : '';
  const retries = log.retries > 0 ? `, ${log.retries} remote read${log.retries === 1 ? '' : 's'} retried` : '';
  return `${source}: ${count} input${count === 1 ? '' : 's'} skipped${notes}${retries} (see ${log.path})`;
}
