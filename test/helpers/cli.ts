/** The built CLI, as a user runs it (`npm test` builds first), and one synchronous run of it. */
import { spawnSync } from 'node:child_process';

export const CLI = new URL('../../dist/pipelines/cli.js', import.meta.url).pathname;

/** Runs `densestream …args` to its end; stdout and stderr as text. */
export const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
