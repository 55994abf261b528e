#!/usr/bin/env node
/** `npm run bench -- NAME [options]`: runs one benchmark; each prints JSON lines, the summary last. */
import { switchOnRelaxedSimd } from '../pipelines/relaxed-simd-flag.js';
import { cellsBench } from './cells.js';
import { convBench } from './conv.js';
import { exportBench } from './export.js';
import { kmeansBench } from './kmeans.js';
import { masksBench } from './masks.js';
import { matmulBench } from './matmul.js';
import { parityBench } from './parity.js';
import { pipelineBench } from './pipeline.js';
import { positivesBench } from './positives.js';
import { remoteBench } from './remote.js';
import { resultsBench } from './results.js';
import { stepKernelsBench } from './step-kernels.js';
import { trainStepBench } from './train-step.js';
import { trainBench } from './train.js';
import { twinBench } from './twin.js';
import { twinKnnBench } from './twin-knn.js';

const BENCHES: Record<string, (argv: string[]) => Promise<void>> = {
  'train-step': trainStepBench,
  'step-kernels': stepKernelsBench,
  conv: convBench,
  matmul: matmulBench,
  pipeline: pipelineBench,
  remote: remoteBench,
  masks: masksBench,
  train: trainBench,
  export: exportBench,
  kmeans: kmeansBench,
  positives: positivesBench,
  results: resultsBench,
  twin: twinBench,
  'twin-knn': twinKnnBench,
  parity: parityBench,
  cells: cellsBench,
};

// Before any module compiles: the benches run the build the CLI runs (and its children do the same).
switchOnRelaxedSimd();
const [name, ...rest] = process.argv.slice(2);
const bench = name === undefined ? undefined : BENCHES[name];
if (!bench) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [options]\n`);
  process.exit(2);
}
bench(rest).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
