import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSkipLog, skipSummary } from '../sinks/skip-log.js';

describe('skipped.jsonl', () => {
  it('writes one JSON line per skipped input, appends across runs, and counts them', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'densestream-skip-')), 'skipped.jsonl');
    const first = openSkipLog(path);
    first.record({ id: 'a.jpg', stage: 'decode', reason: 'VipsJpeg: premature end of JPEG image' });
    first.record({ id: 'b.jpg', stage: 'decode', reason: 'empty file (0 bytes)' });
    expect(await first.close()).toBe(2);
    const second = openSkipLog(path); // a resumed job adds to the same report
    second.record({ id: 'c.png', stage: 'decode', reason: 'Input image exceeds pixel limit' });
    expect(await second.close()).toBe(1);
    const lines = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string });
    expect(lines.map((l) => l.id)).toEqual(['a.jpg', 'b.jpg', 'c.png']);
    expect(skipSummary('dir:/data/x', 3, second)).toBe(`dir:/data/x: 3 inputs skipped (see ${path})`);
  });

  it('counts a fallback on a sample that stayed as a note, not a skip', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'densestream-skip-')), 'skipped.jsonl');
    const log = openSkipLog(path);
    log.record({ id: 'a.jpg', stage: 'attention-view', reason: 'no attention mass; the whole image' });
    log.record({ id: 'b.jpg', stage: 'mask', reason: 'empty mask; the whole image' });
    log.record({ id: 'c.jpg', stage: 'read', reason: 'EACCES' });
    expect(log.notes).toBe(2);
    expect(await log.close()).toBe(1);
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(3); // every record is kept
    expect(skipSummary('dir:/d', 1, log)).toBe(`dir:/d: 1 input skipped, 2 fallbacks noted (see ${path})`);
  });
});
