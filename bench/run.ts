#!/usr/bin/env node
/** `npm run bench -- NAME [options]`: runs one benchmark; each prints JSON lines, the summary last. */
import { switchOnRelaxedSimd } from '../pipelines/relaxed-simd-flag.js';

type Bench = (argv: string[]) => Promise<void>;

// Each bench is imported only once chosen, after Node 20's relaxed-SIMD flag is set: some of them
// compile WebAssembly as they load (parquet-wasm, through the training pipeline).
const BENCHES: Record<string, () => Promise<Bench>> = {
  'train-step': async () => (await import('./train-step.js')).trainStepBench,
  'step-kernels': async () => (await import('./step-kernels.js')).stepKernelsBench,
  conv: async () => (await import('./conv.js')).convBench,
  matmul: async () => (await import('./matmul.js')).matmulBench,
  pipeline: async () => (await import('./pipeline.js')).pipelineBench,
  remote: async () => (await import('./remote.js')).remoteBench,
  masks: async () => (await import('./masks.js')).masksBench,
  train: async () => (await import('./train.js')).trainBench,
  export: async () => (await import('./export.js')).exportBench,
  kmeans: async () => (await import('./kmeans.js')).kmeansBench,
  positives: async () => (await import('./positives.js')).positivesBench,
  results: async () => (await import('./results.js')).resultsBench,
  twin: async () => (await import('./twin.js')).twinBench,
  'twin-knn': async () => (await import('./twin-knn.js')).twinKnnBench,
  parity: async () => (await import('./parity.js')).parityBench,
  cells: async () => (await import('./cells.js')).cellsBench,
};

const [name, ...rest] = process.argv.slice(2);
const load = name === undefined ? undefined : BENCHES[name];
if (!load) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [options]\n`);
  process.exit(2);
}
// The benches run the build the CLI runs (and their children, the bench runner or the CLI, do the same).
switchOnRelaxedSimd();
load()
  .then((bench) => bench(rest))
  .catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
