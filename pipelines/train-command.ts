/**
 * `densestream train` as a command: options parsed and checked first (`train-options.ts`, which
 * loads no engine, so a wrong one is refused at once), then the run (`train.ts`) with a progress
 * line on stderr, Ctrl-C turned into a checkpoint and exit 130, and one JSON summary on stdout.
 */
import { join } from 'node:path';
import type { PositiveStats } from '../positives/pair-counts.js';
import { trainProgressLine } from './progress.js';
import type { parseTrainConfig } from './train-options.js';

/** `densestream train`; resolves with 130 when Ctrl-C stopped the run (after its checkpoint), as a shell expects of an interrupted command. */
export async function trainCommand(config: ReturnType<typeof parseTrainConfig>): Promise<number> {
  const { resume, overwrite, verbose, stepsDone, ...c } = config;
  if (stepsDone !== undefined && stepsDone >= c.steps) {
    process.stderr.write(`train --resume: the run in ${c.out} is complete (${stepsDone} of ${c.steps} steps); nothing to do\n`);
    return 0;
  }
  const tty = process.stderr.isTTY === true;
  // Ctrl-C: finish the step in hand, checkpoint, exit cleanly (a second Ctrl-C kills).
  let interrupted = false;
  const onInterrupt = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\ninterrupted: checkpointing after this step (Ctrl-C again to abort)\n');
  };
  process.on('SIGINT', onInterrupt);
  try {
    const { runTraining } = await import('./train.js');
    (await import('../train/heap-growth.js')).widenHeapGrowth();
    const { knnGainStdErr } = await import('../train/knn-monitor.js');
    const result = await runTraining(c, { resume, overwrite, verbose, hooks: [trainProgressLine(tty), { shouldStop: () => interrupted }] });
    if (tty) process.stderr.write('\n');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const round4 = (x: number) => Math.round(x * 1e4) / 1e4;
    // The monitor's gain over the random-init encoder it started from, and whether it is more than noise.
    let knnGain: Record<string, number> = {};
    if (result.knnInit !== undefined && result.knnFinal !== undefined && result.knnQueries) {
      const gain = result.knnFinal - result.knnInit;
      const se = knnGainStdErr(result.knnInit, result.knnFinal, result.knnQueries);
      knnGain = { knnGain: round4(gain), knnGainStdErr: round4(se) };
      process.stderr.write(
        `knn: ${result.knnInit.toFixed(3)} at random init, ${result.knnFinal.toFixed(3)} now: ${gain >= 0 ? '+' : ''}${gain.toFixed(3)} ± ${se.toFixed(3)} (one standard error, ${result.knnQueries} queries)${Math.abs(gain) < 2 * se ? ', within noise' : ''}\n`,
      );
    }
    process.stdout.write(
      `${JSON.stringify({
        method: c.method,
        encoder: c.encoder,
        backend: result.backend,
        ...(result.kernelBuild === undefined ? {} : { kernelBuild: result.kernelBuild }),
        augment: result.augment,
        steps: result.steps,
        batch: c.batch,
        size: c.size,
        imagesPerSec: Math.round(result.imagesPerSec * 10) / 10,
        dataWaitFraction: Math.round(result.dataWaitFraction * 1000) / 1000,
        lossFirst10: Math.round(mean(result.losses.slice(0, 10)) * 1e4) / 1e4,
        lossLast10: Math.round(mean(result.losses.slice(-10)) * 1e4) / 1e4,
        checkpoint: join(c.out, 'checkpoint'),
        metrics: join(c.out, 'metrics.jsonl'),
        interrupted,
        ...(result.positives ? { positives: roundedStats(result.positives) } : {}),
        ...(result.knnInit === undefined ? {} : { knnInit: round4(result.knnInit) }),
        ...(result.knnFinal === undefined ? {} : { knnFinal: round4(result.knnFinal) }),
        ...knnGain,
      })}\n`,
    );
    return interrupted ? 130 : 0;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

/** Positive statistics for the summary line, fractions and seconds to 3 decimals. */
function roundedStats(p: PositiveStats): PositiveStats {
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    ...p,
    selfPositiveFraction: r3(p.selfPositiveFraction),
    clusteringSeconds: r3(p.clusteringSeconds),
    waitedSeconds: r3(p.waitedSeconds),
    selfPositiveFractionAfterClustering: p.selfPositiveFractionAfterClustering === null ? null : r3(p.selfPositiveFractionAfterClustering),
  };
}
