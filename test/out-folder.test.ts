import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../core/config-error.js';
import { prepareOutFolder } from '../pipelines/out-folder.js';
import { CLI } from './helpers/cli.js';

describe('prepareOutFolder', () => {
  it('creates missing parents and leaves no probe file behind', () => {
    const root = mkdtempSync(join(tmpdir(), 'densestream-out-'));
    prepareOutFolder(join(root, 'a', 'b', 'c'));
    expect(existsSync(join(root, 'a', 'b', 'c'))).toBe(true);
    expect(readdirSync(join(root, 'a', 'b', 'c'))).toEqual([]);
    prepareOutFolder(join(root, 'a', 'b', 'c')); // an existing folder is fine
  });

  it('refuses a file, and a path under a file, naming it', () => {
    const root = mkdtempSync(join(tmpdir(), 'densestream-out-'));
    const file = join(root, 'file.txt');
    writeFileSync(file, 'x');
    expect(() => prepareOutFolder(file)).toThrow(new ConfigError(`--out ${file}: ${file} is a file, not a folder`));
    expect(() => prepareOutFolder(join(file, 'sub'), '--dir')).toThrow(
      new ConfigError(`--dir ${join(file, 'sub')}: ${file} is a file, not a folder`),
    );
  });

  it.runIf(existsSync('/proc/self'))(
    "refuses a path that cannot hold folders at once (Node's recursive mkdir loops forever on /proc/x)",
    () => {
      expect(() => prepareOutFolder('/proc/x/run')).toThrow(
        new ConfigError('--out /proc/x/run: cannot create the folder /proc/x (ENOENT)'),
      );
    },
  );
});

describe.runIf(existsSync('/proc/self'))('commands with an --out that cannot be written', () => {
  it.each([
    ['train', ['--steps', '1']],
    ['export', ['--data', 'scenes:32:8']],
    ['precompute', ['--data', 'scenes:32:8']],
    ['preview', ['--data', 'scenes:32:8']],
    ['eval', ['--checkpoint', 'random']],
  ])('%s refuses it before any work, with exit 2', (command, args) => {
    const run = spawnSync(process.execPath, [CLI, command, ...args, '--out', '/proc/x'], { encoding: 'utf8', timeout: 60_000 });
    expect(run.signal, 'it hung').toBeNull();
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toContain('--out /proc/x: cannot create the folder /proc/x (ENOENT)');
  });
});
