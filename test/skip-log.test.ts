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
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string });
    expect(lines.map((l) => l.id)).toEqual(['a.jpg', 'b.jpg', 'c.png']);
    expect(skipSummary('dir:/data/x', 3, second)).toBe(`dir:/data/x: 3 inputs skipped (see ${path})`);
  });
});
