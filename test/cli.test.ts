import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// The built CLI, as a user runs it (`npm test` builds first).
const CLI = new URL('../dist/pipelines/cli.js', import.meta.url).pathname;
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

describe('densestream CLI', () => {
  it('prints the package version', () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const run = cli('--version');
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe(version);
  });

  it('lists only commands that exist in --help', () => {
    const run = cli('--help');
    expect(run.status).toBe(0);
    const commands = [...run.stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]);
    expect(commands).toEqual(['backend']);
  });

  it('reports the backend it took as JSON and why it passed over the others', () => {
    const run = cli('backend', '--threads', '2');
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ backend: 'wasm', threads: 2 });
    expect(run.stderr).toContain('backend: passed over @tensorflow/tfjs-node-gpu');
  });

  it.each([
    [['backend', '--backend', 'gpu'], '--backend: expected one of auto|tensorflow|wasm|cpu, got "gpu"'],
    [['backend', '--threads', 'abc'], '--threads: expected a positive integer, got "abc"'],
    [['backend', '--threads', '9'], '--threads: expected an integer from 1 to 8, got "9"'],
  ])('refuses %j before any work: %s', (args, message) => {
    const run = cli(...args);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(message);
    expect(run.stdout).toBe('');
  });

  it('refuses an unknown command with exit code 2', () => {
    const run = cli('frobnicate');
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('unknown command "frobnicate"');
  });
});
