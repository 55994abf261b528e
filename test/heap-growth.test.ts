import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT, widenHeapGrowth } from '../train/heap-growth.js';

const MODULE = new URL('../dist/train/heap-growth.js', import.meta.url).href;

/** `widenHeapGrowth()`'s answer in a fresh node started with `flags` (the setting is process-wide). */
function inChild(flags: string[]): string {
  const run = spawnSync(
    process.execPath,
    [...flags, '--input-type=module', '-e', `const m = await import(${JSON.stringify(MODULE)}); console.log(m.widenHeapGrowth());`],
    { encoding: 'utf8', cwd: fileURLToPath(new URL('..', import.meta.url)) },
  );
  expect(run.stderr).toBe('');
  return run.stdout.trim();
}

describe('widenHeapGrowth', () => {
  it("sets V8's growth to the trainer's default, and keeps one given on node's command line", () => {
    expect(inChild([])).toBe(`${HEAP_GROWING_PERCENT}`);
    expect(inChild(['--heap-growing-percent=30'])).toBe('30');
    expect(inChild(['--heap_growing_percent=250'])).toBe('250');
  });

  it('refuses a growth that is not a whole percentage from 1 to 1000, before setting anything', () => {
    for (const bad of [0, 1.5, -10, 2000, Number.NaN]) {
      expect(() => widenHeapGrowth(bad)).toThrow(`heap growth: expected a whole percentage from 1 to 1000, got ${bad}`);
    }
  });
});
