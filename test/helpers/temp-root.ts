/**
 * vitest's global setup: one scratch root for the whole run, removed after it. Tests make their
 * folders with `mkdtempSync(join(tmpdir(), …))` and `os.tmpdir()` reads `TMPDIR`, which the test
 * processes and the CLIs they spawn inherit from here; without it a run of the suite left about
 * a hundred folders, 240 MB, in /tmp.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'densestream-tests-'));
  process.env['TMPDIR'] = root;
  return () => rmSync(root, { recursive: true, force: true });
}
