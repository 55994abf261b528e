import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // every test's scratch folders under one root, removed after the run
    globalSetup: ['test/helpers/temp-root.ts'],
    // Each file gets its own process: tfjs keeps one global engine and backend per process.
    pool: 'forks',
    // Two files at a time even on two cores (vitest's default there is one): much of a file's time
    // is spawned CLI start-up and single-threaded JS, which overlap well. Measured on 2 cores:
    // 1 181 s with one worker, 781 s with two, all tests passing.
    maxWorkers: Math.max(2, availableParallelism()),
    // Heap-growth checks call global.gc() between measurements.
    execArgv: ['--expose-gc'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
