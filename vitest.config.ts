import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Heap-growth checks call global.gc() between measurements.
const execArgv = ['--expose-gc'];

// The kernels' tests again on the other build of densestream's kernels, so both are held to the
// same bounds: every file runs on the runtime's default (relaxed SIMD from Node 22 on, the SIMD
// build before), and these again on the build it would not take. Node 20 compiles relaxed SIMD
// only behind a flag, which Node 22 refuses. DENSESTREAM_RELAXED_SIMD pins the build, `1` making a
// runtime without relaxed SIMD an error rather than a silent fall-back.
const nativeRelaxed = Number(process.versions.node.split('.')[0]) >= 22;
const otherBuild = nativeRelaxed
  ? { name: 'simd', execArgv, env: { DENSESTREAM_RELAXED_SIMD: '0' } }
  : { name: 'relaxed-simd', execArgv: [...execArgv, '--experimental-wasm-relaxed-simd'], env: { DENSESTREAM_RELAXED_SIMD: '1' } };
const kernelTests = [
  'test/wasm-kernels.test.ts',
  'test/kernel-builds.test.ts',
  'test/layer-kernels.test.ts',
  'test/phase-kernels.test.ts',
  'test/update-kernels.test.ts',
  'test/winograd.test.ts',
  'test/conv-gradients.test.ts',
  'test/direct-conv.test.ts',
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
      { extends: true, test: { ...otherBuild, include: kernelTests } },
    ],
  },
});
