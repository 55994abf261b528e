/**
 * vitest's global setup: one scratch root for the whole run, removed after it. Tests make their
 * folders with `mkdtempSync(join(tmpdir(), …))` and `os.tmpdir()` reads `TMPDIR`, which the test
 * processes and the CLIs they spawn inherit from here; without it a run of the suite left about
 * a hundred folders, 240 MB, in /tmp.
 *
 * vitest calls it once per project (vitest.config.ts has two): the first makes the root, the
 * others share it. A root made inside another nests its paths past what a Unix socket takes
 * (108 bytes), and Chromium, which puts its singleton socket there, would not start.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = 'DENSESTREAM_TEST_ROOT';

export default function setup(): () => void {
  if (process.env[ROOT] !== undefined) return () => {};
  const root = mkdtempSync(join(tmpdir(), 'densestream-tests-'));
  process.env[ROOT] = root;
  process.env['TMPDIR'] = root;
  return () => rmSync(root, { recursive: true, force: true });
}
