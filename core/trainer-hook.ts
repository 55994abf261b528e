/**
 * What plugs into the training loop. The loop itself only steps the optimiser, frees batches
 * and writes metrics and checkpoints; everything a run adds around it (the kNN monitor, the
 * attention refresh, clustering positives, the progress line, Ctrl-C) is a hook, called in the
 * order given. Every method is optional; an awaited one holds the next step back.
 */
import type { Batch } from './batch.js';

/** One finished step, as the hooks see it. */
export interface StepEvent {
  /** Steps done, this one included. */
  readonly step: number;
  /** The run's length in steps. */
  readonly steps: number;
  /** The batch just trained on (freed after the hooks). */
  readonly batch: Batch;
  /** Numbers the step's log line carries next to the loss's own parts: a hook may add to them. */
  readonly parts: Record<string, number>;
  /** Whether this step is logged (every `logEvery` steps, and the last). */
  readonly logged: boolean;
  /** Milliseconds this step waited for its batch (the data plane's share of the step's wall time). */
  readonly dataWaitMs: number;
}

/** Where a run starts. */
export interface RunStart {
  /** Steps already done (0 unless resumed). */
  readonly startStep: number;
  /** The run's length in steps. */
  readonly steps: number;
}

/** A metrics line, as `metrics.jsonl` holds it. */
export interface MetricsRecord {
  step: number;
  loss: number;
  parts: Record<string, number>;
  lr: number;
  imagesPerSec: number;
  dataWaitFraction: number;
  seconds: number;
}

export interface TrainerHook {
  /** Resume: the run goes on after `step`; take back what {@link onCheckpoint} wrote into `dir`. Before {@link onStart}. */
  onRestore?(dir: string, step: number): void | Promise<void>;
  /** Before the first batch is pulled (after a restore), outside the run's clock. */
  onStart?(run: RunStart): void | Promise<void>;
  /** After every step (after `method.afterStep`, before the batch is freed and the step logged). */
  onStep?(event: StepEvent): void | Promise<void>;
  /** With every metrics record, once it is written. */
  onLog?(record: MetricsRecord): void;
  /** Writes more state into the checkpoint folder being written (`dir`, swapped in whole with the weights), taken after `step` steps. */
  onCheckpoint?(dir: string, step: number): void | Promise<void>;
  /** Asked after every step: true checkpoints and stops (Ctrl-C, or a test's interruption). */
  shouldStop?(stepsDone: number): boolean;
  /**
   * Permits of the sample budget a batch holds, returned after its step: the samples the
   * source read for it (default `batch.ids.length`). At most one hook of a run answers it: a
   * batch of (anchor, fetched positive) pairs holds one per pair.
   */
  budgetPermits?(batch: Batch): number;
  /** The run is over, finished or failed: release what the hook holds. Called once, by whoever assembled the hooks ({@link closeHooks}). */
  close?(): void;
}

/** Calls `call` on each hook in order, awaiting each (hooks see each other's parts in that order). */
export async function eachHook(hooks: readonly TrainerHook[], call: (hook: TrainerHook) => void | Promise<void>): Promise<void> {
  for (const hook of hooks) await call(hook);
}

/** The permits a batch holds, from the one hook that says (refusing two), or one per sample. */
export function budgetPermitsOf(hooks: readonly TrainerHook[]): (batch: Batch) => number {
  const answering = hooks.filter((h) => h.budgetPermits !== undefined);
  if (answering.length > 1) throw new Error(`trainer: ${answering.length} hooks answer budgetPermits; at most one may`);
  const hook = answering[0];
  return hook ? (batch) => hook.budgetPermits!(batch) : (batch) => batch.ids.length;
}

/** Closes every hook, each once, even when one throws (the first error is rethrown after all are closed). */
export function closeHooks(hooks: readonly TrainerHook[]): void {
  let first: unknown;
  for (const hook of hooks) {
    try {
      hook.close?.();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}
