/**
 * The progress line of a long job on stderr: samples done, samples/s, ETA. On a terminal it
 * redraws in place a few times a second; in a log it prints a line every 10 s.
 */
export interface ProgressMeter {
  /** `samples` more source positions were processed. */
  advance(samples: number): void;
  end(): void;
}

export function progressMeter(label: string, total: number | undefined, enabled: boolean): ProgressMeter {
  const tty = process.stderr.isTTY === true;
  const start = performance.now();
  let samples = 0;
  let shown = 0;
  const line = () => {
    const seconds = (performance.now() - start) / 1000;
    const rate = samples / Math.max(seconds, 1e-9);
    const done = total === undefined ? `${samples}` : `${samples}/${total} (${((100 * samples) / Math.max(1, total)).toFixed(0)}%)`;
    const eta = total === undefined || samples === 0 ? '' : `  ETA ${Math.round(((total - samples) * seconds) / samples)} s`;
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
    end() {
      if (enabled) process.stderr.write(tty ? `\r${line()}\n` : `${line()}\n`);
    },
  };
}
