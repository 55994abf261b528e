/**
 * `train` on folders with unreadable inputs (real bad files: zero bytes, a truncated JPEG, text
 * named .png): each is recorded once per job and not read again; a folder where nothing
 * decodes stops the job instead of training 0 steps.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI } from './helpers/cli.js';

const PHOTO = new URL('./fixtures/chelsea.jpg', import.meta.url).pathname;
const TINY = ['--batch', '4', '--size', '32', '--queue', '16', '--knn-every', '0', '--threads', '2', '--augment', 'cpu'];

function badFiles(dir: string): void {
  writeFileSync(join(dir, 'empty.jpg'), new Uint8Array(0));
  writeFileSync(join(dir, 'truncated.jpg'), readFileSync(PHOTO).subarray(0, 600));
  writeFileSync(join(dir, 'text.png'), 'not an image\n');
}

const skippedIds = (out: string): string[] =>
  readFileSync(join(out, 'skipped.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { id: string }).id);

describe('train on unreadable inputs', () => {
  it('stops with exit 1 when no sample of the first pass decodes, and writes no checkpoint', () => {
    const data = mkdtempSync(join(tmpdir(), 'densestream-allbad-'));
    badFiles(data);
    const out = mkdtempSync(join(tmpdir(), 'densestream-allbad-run-'));
    const run = spawnSync(process.execPath, [CLI, 'train', '--data', `dir:${data}`, '--steps', '5', ...TINY, '--out', out], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(run.status, run.stderr).toBe(1);
    expect(run.stderr).toContain(
      `--data dir:${data}: no sample of the first pass could be read and decoded (3 unreadable); see ${join(out, 'skipped.jsonl')} for why`,
    );
    expect(existsSync(join(out, 'checkpoint'))).toBe(false);
    expect(skippedIds(out).sort()).toEqual(['empty.jpg', 'text.png', 'truncated.jpg'].sort());
  });

  it('records a bad file once per job over many epochs, and trains on the rest', () => {
    const data = mkdtempSync(join(tmpdir(), 'densestream-somebad-'));
    badFiles(data);
    for (let i = 0; i < 4; i++) copyFileSync(PHOTO, join(data, `cat-${i}.jpg`));
    const out = mkdtempSync(join(tmpdir(), 'densestream-somebad-run-'));
    // 4 good images, batch 4: one step an epoch, so 6 steps read the folder 7 times.
    const run = spawnSync(process.execPath, [CLI, 'train', '--data', `dir:${data}`, '--steps', '6', ...TINY, '--out', out], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ steps: 6 });
    expect(skippedIds(out).sort()).toEqual(['empty.jpg', 'text.png', 'truncated.jpg'].sort());
  });
});
