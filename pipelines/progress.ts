/**
 * Progress lines on stderr. A long job's meter (samples done, samples/s, ETA) redraws in place
 * a few times a second on a terminal and prints a line every 10 s in a log; a training run's
 * line comes with each logged step.
 */
import type { TrainerHook } from '../core/trainer-hook.js';

export interface ProgressMeter {
  /** `samples` more source positions were processed. */
  advance(samples: number): void;
  /** `samples` positions an earlier run finished (a resume): counted as done, not in this run's pace. */
  alreadyDone(samples: number): void;
  end(): void;
}

/** Seconds left at the pace of this run's own work: `done` units in `seconds`, `left` to go. */
function etaSeconds(left: number, seconds: number, done: number): number {
  return Math.round((left * seconds) / Math.max(1, done));
}

export function progressMeter(
  label: string,
  total: number | undefined,
  enabled: boolean,
  tty = process.stderr.isTTY === true,
): ProgressMeter {
  const start = performance.now();
  let samples = 0;
  let earlier = 0;
  let shown = 0;
  const line = () => {
    const seconds = (performance.now() - start) / 1000;
    const processed = samples - earlier;
    const rate = processed / Math.max(seconds, 1e-9);
    const done = total === undefined ? `${samples}` : `${samples}/${total} (${((100 * samples) / Math.max(1, total)).toFixed(0)}%)`;
    const eta = total === undefined || processed === 0 ? '' : `  ETA ${etaSeconds(total - samples, seconds, processed)} s`;
    return `${label}: ${done} samples  ${rate.toFixed(1)} samples/s${eta}`;
  };
  return {
    advance(s) {
      samples += s;
      if (!enabled) return;
      const now = performance.now();
      if (now - shown < (tty ? 250 : 10_000)) return;
      shown = now;
      process.stderr.write(tty ? `\r${line()}` : `${line()}\n`);
    },
    alreadyDone(s) {
      samples += s;
      earlier += s;
    },
    end() {
      if (enabled) process.stderr.write(tty ? `\r${line()}\n` : `${line()}\n`);
    },
  };
}

/** The progress line on stderr, one per logged step (rewritten in place on a terminal). */
export function trainProgressLine(tty: boolean): TrainerHook {
  let total = 0;
  let first = 0;
  return {
    onStart: ({ startStep, steps }) => {
      total = steps;
      first = startStep; // a resumed run's clock starts at its first step, not at step 0
    },
    onLog: (r) => {
      const eta = etaSeconds(total - r.step, r.seconds, r.step - first);
      const pairs =
        r.parts['selfPositives'] === undefined
          ? ''
          : `  self-pairs ${(100 * r.parts['selfPositives']).toFixed(0)}%  reclusters ${r.parts['reclusters'] ?? 0}`;
      const knn = r.parts['knn'] === undefined ? '' : `  knn ${r.parts['knn'].toFixed(2)}`;
      const line = `step ${r.step}/${total}  loss ${r.loss.toFixed(4)}  lr ${r.lr.toFixed(4)}  ${r.imagesPerSec.toFixed(1)} img/s  data wait ${(100 * r.dataWaitFraction).toFixed(0)}%${pairs}${knn}  ETA ${eta} s`;
      process.stderr.write(tty ? `\r${line}` : `${line}\n`);
    },
  };
}
