/** The built CLI, as a user runs it (`npm test` builds first), and one synchronous run of it. */
import { spawnSync } from 'node:child_process';
import { relaxedSimdSupported } from '../../models/relaxed-simd.js';

export const CLI = new URL('../../dist/pipelines/cli.js', import.meta.url).pathname;

/** Runs `densestream …args` to its end; stdout and stderr as text. */
export const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

/**
 * The environment that runs a CLI child on the build of densestream's kernels this process runs.
 * On Node 20 the CLI switches relaxed SIMD on by itself and a library import (this test process)
 * does not, so a test comparing a child's numbers with its own, to the last digits, pins the child.
 */
export function sameBuildEnv(): NodeJS.ProcessEnv {
  return { ...process.env, DENSESTREAM_RELAXED_SIMD: process.env['DENSESTREAM_RELAXED_SIMD'] || (relaxedSimdSupported() ? '1' : '0') };
}
