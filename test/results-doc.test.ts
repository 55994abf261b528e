import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resultsBench } from '../bench/results.js';
import { resultsDoc } from '../bench/results-tables.js';

const section = (data: string, body: string) => `<!-- results: ${data} -->\n## ${data}\n\n${body}\n<!-- /results: ${data} -->`;

describe('the results doc (npm run results --table)', () => {
  it("rewrites the tables a run made and keeps the others' sections as they were, in the tables' order", () => {
    const before = [
      '# Results',
      '',
      'old words',
      section('scenes', 'scenes of commit a'),
      'between',
      section('fashion-mnist', 'fm of commit a'),
    ].join('\n');
    const after = resultsDoc(before, new Map([['fashion-mnist', section('fashion-mnist', 'fm of commit b')]]));
    expect(after).toContain(section('scenes', 'scenes of commit a'));
    expect(after).toContain(section('fashion-mnist', 'fm of commit b'));
    expect(after).not.toContain('fm of commit a');
    expect(after.indexOf('<!-- results: scenes -->')).toBeLessThan(after.indexOf('<!-- results: fashion-mnist -->'));
    // Text outside the sections is the doc's own, not kept from the old one.
    expect(after).not.toContain('old words');
    expect(after).not.toContain('between');
    expect(after.startsWith('# Results\n')).toBe(true);
  });

  it('leaves out a table that neither the run nor the old doc has, and ignores an unclosed section', () => {
    const made = new Map([['scenes', section('scenes', 'new')]]);
    expect(resultsDoc(undefined, made)).not.toContain('fashion-mnist');
    const unclosed = '<!-- results: fashion-mnist -->\n## Fashion-MNIST\nhalf a table';
    expect(resultsDoc(unclosed, made)).not.toContain('half a table');
  });

  it("keeps the committed doc's tables whole when it is rewritten with nothing new", () => {
    const doc = readFileSync(new URL('../docs/RESULTS.md', import.meta.url), 'utf8');
    const again = resultsDoc(doc, new Map());
    for (const data of ['scenes', 'fashion-mnist']) {
      const start = doc.indexOf(`<!-- results: ${data} -->`);
      const end = doc.indexOf(`<!-- /results: ${data} -->`);
      expect(start).toBeGreaterThanOrEqual(0);
      expect(again).toContain(doc.slice(start, end));
    }
    expect(again).toBe(doc); // the committed doc is in the form a run writes
  });

  it('refuses an unknown --table before any work', async () => {
    await expect(resultsBench(['--table', 'scenes,imagenet', '--out', '/tmp/never-results'])).rejects.toThrow(
      '--table: expected scenes|fashion-mnist (or a comma list), got "imagenet"',
    );
  });
});
