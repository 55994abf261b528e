import { setFlagsFromString } from 'node:v8';

/**
 * How far V8's old generation may grow past its live size before the next full collection,
 * in percent, for a training process (docs/performance.md, "Measured: garbage collection in a step").
 *
 * Between two full collections a step's process put 7–12 MB of new objects in the old
 * generation, under 1 MB of it promoted by scavenges (`--trace-gc-nvp`), while the live heap
 * stayed near 38 MB. V8 sizes the next limit from its collector's speed against the allocation
 * rate, and a step allocates slowly (it runs in WebAssembly), so it allowed about 1.25× the
 * live size: softrank did a mark-compact every step, 4–15 ms of the thread that runs the step
 * and the data plane. At 100 % (twice the live size) it did 8 in 40 steps instead of 40.
 */
export const HEAP_GROWING_PERCENT = 100;

/**
 * Sets V8's `--heap-growing-percent` for this process, unless the command line already chose
 * one (`node --heap-growing-percent=N`), and returns the value in force. A process-wide
 * setting, so the CLI and the benches call it; a library caller decides for its own process.
 * V8 reads the flag each time it sizes the old generation, so setting it at run time works
 * from the next full collection on.
 */
export function widenHeapGrowth(percent = HEAP_GROWING_PERCENT): number {
  checkHeapGrowth(percent);
  const given = process.execArgv.map((a) => /^--heap[-_]growing[-_]percent=(\d+)$/.exec(a)?.[1]).find((v) => v !== undefined);
  if (given !== undefined) return Number(given);
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  return percent;
}

/** Refuses a growth that is not a whole percentage from 1 to 1000, naming the value. */
export function checkHeapGrowth(percent: number): void {
  if (!Number.isInteger(percent) || percent < 1 || percent > 1000) {
    throw new Error(`heap growth: expected a whole percentage from 1 to 1000, got ${percent}`);
  }
}
