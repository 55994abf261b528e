import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Heap-growth checks call global.gc() between measurements.
const execArgv = ['--expose-gc'];

// The kernels' tests again on their relaxed-SIMD build (fused multiply-adds), which every file
// above runs on where the runtime compiles it by default (Node 22 on); Node 20 compiles it behind
// a flag, and refuses that flag from Node 22 on. DENSESTREAM_RELAXED_SIMD=1 makes a runtime
// without it an error, not a silent fall-back to the SIMD build.
const relaxedFlag = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-wasm-relaxed-simd'] : [];
const relaxedTests = [
  'test/wasm-kernels.test.ts',
  'test/layer-kernels.test.ts',
  'test/winograd.test.ts',
  'test/conv-gradients.test.ts',
  'test/key-similarity.test.ts',
  'test/parity.test.ts',
  'test/step-kernels-bench.test.ts', // its --builds alternation, which needs both builds
];

export default defineConfig({
  test: {
    // every test's scratch folders under one root, removed after the run
    globalSetup: ['test/helpers/temp-root.ts'],
    // Each file gets its own process: tfjs keeps one global engine and backend per process.
    pool: 'forks',
    // Two files at a time even on two cores (vitest's default there is one): much of a file's time
    // is spawned CLI start-up and single-threaded JS, which overlap well. Measured on 2 cores:
    // 1 181 s with one worker, 781 s with two, all tests passing.
    maxWorkers: Math.max(2, availableParallelism()),
    execArgv,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: 'all', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'relaxed-simd',
          include: relaxedTests,
          execArgv: [...execArgv, ...relaxedFlag],
          env: { DENSESTREAM_RELAXED_SIMD: '1' },
        },
      },
    ],
  },
});
