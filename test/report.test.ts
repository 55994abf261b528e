import * as tf from '@tensorflow/tfjs';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderScene } from '../datasets/scenes.js';
import { selectBackend } from '../models/backend.js';
import { pcaRgb, principalComponents } from '../operators/feature-pca.js';
import type { Pixels } from '../core/index.js';
import { ConfigError } from '../core/config-error.js';
import { metricsCharts, runReport } from '../pipelines/report.js';
import { parseReportConfig } from '../pipelines/report-options.js';
import { CHART, escapeHtml, lineChartSvg, niceTicks } from '../sinks/report-html.js';
import type { MetricsRecord } from '../core/trainer-hook.js';
import { cli } from './helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';

/** Every `<circle>` of an SVG string as [cx, cy, series]. */
const circles = (svg: string) =>
  [...svg.matchAll(/<circle data-series="([^"]*)" cx="([^"]+)" cy="([^"]+)"/g)].map((m) => [Number(m[2]), Number(m[3]), m[1]] as const);

describe('lineChartSvg', () => {
  const plotW = CHART.width - CHART.left - CHART.right;
  const plotH = CHART.height - CHART.top - CHART.bottom;

  it('puts the points of a series on the data extent: first at the bottom-left corner, last at the top-right, the rest in proportion', () => {
    const svg = lineChartSvg({
      id: 'loss',
      title: 'Loss',
      xLabel: 'step',
      series: [
        {
          name: 'loss',
          points: [
            [10, 2],
            [20, 4],
            [30, 3],
            [50, 6],
          ],
        },
      ],
    });
    expect(circles(svg)).toEqual([
      [CHART.left, CHART.top + plotH, 'loss'],
      [CHART.left + plotW / 4, CHART.top + plotH / 2, 'loss'],
      [CHART.left + plotW / 2, CHART.top + (3 / 4) * plotH, 'loss'],
      [CHART.left + plotW, CHART.top, 'loss'],
    ]);
    expect(svg).toContain('data-chart="loss"');
    const line = circles(svg)
      .map(([x, y]) => `${x},${y}`)
      .join(' ');
    expect(svg).toContain(`points="${line}"`); // the line goes through the same points
    // Tick labels at round values within the extent, on both axes.
    for (const t of ['10', '20', '30', '40', '50', '2', '3', '4', '5', '6']) expect(svg).toContain(`>${t}</text>`);
  });

  it('draws a circle per point for every series, with a legend when there are several, and a flat series mid-plot', () => {
    const svg = lineChartSvg({
      id: 'x',
      title: 'T',
      xLabel: 'step',
      series: [
        {
          name: 'a',
          points: [
            [1, 5],
            [2, 5],
            [3, 5],
          ],
        },
        { name: 'b', points: [[2, 5]] },
      ],
    });
    const pts = circles(svg);
    expect(pts.filter((p) => p[2] === 'a')).toHaveLength(3);
    expect(pts.filter((p) => p[2] === 'b')).toHaveLength(1);
    for (const [, cy] of pts) expect(cy).toBeCloseTo(CHART.top + plotH / 2, 5);
    expect(svg).toContain('>a</text>');
    expect(svg).toContain('>b</text>');
  });

  it('escapes <, & and " in the title, axis label, series names and chart id', () => {
    const svg = lineChartSvg({
      id: 'a"b',
      title: 'loss <&> "q"',
      xLabel: 'x & y',
      series: [
        {
          name: '<s"&>',
          points: [
            [0, 1],
            [1, 2],
          ],
        },
        { name: 'ok', points: [[0, 0]] },
      ],
    });
    expect(svg).not.toMatch(/<s"|<&>|x & y|a"b/);
    expect(svg).toContain('loss &lt;&amp;&gt; &quot;q&quot;');
    expect(svg).toContain('data-series="&lt;s&quot;&amp;&gt;"');
    expect(svg).toContain('data-chart="a&quot;b"');
    expect(escapeHtml(`<a href='x'>&amp;</a>`)).toBe('&lt;a href=&#39;x&#39;&gt;&amp;amp;&lt;/a&gt;');
  });

  it('picks round ticks (steps of 1, 2 or 5 × 10^k) inside the extent', () => {
    const close = (got: number[], want: number[]) => {
      expect(got).toHaveLength(want.length);
      got.forEach((t, i) => expect(t).toBeCloseTo(want[i]!, 12));
    };
    close(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    close(niceTicks(0.013, 0.047), [0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045]);
    expect(niceTicks(0, 100)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(3, 3)).toEqual([3]);
  });

  it('charts only what was logged, and says so when no kNN accuracy was', () => {
    const rec = (step: number, parts: Record<string, number>): MetricsRecord => ({
      step,
      loss: 1 / step,
      parts,
      lr: 0.1,
      imagesPerSec: 10,
      dataWaitFraction: 0,
      seconds: step,
    });
    const without = metricsCharts([rec(1, { global: 1 }), rec(2, { global: 0.5 })]);
    expect(without.charts.map((c) => c.id)).toEqual(['loss', 'lr', 'imagesPerSec']);
    expect(without.charts[0]!.series.map((x) => x.name)).toEqual(['loss', 'global']);
    expect(without.notes.join(' ')).toContain('No kNN accuracy');
    const withKnn = metricsCharts([
      rec(1, { global: 1 }),
      rec(2, { global: 0.5, knn: 0.2, selfPositives: 0.5, reclusters: 1, bank: 8, negatives: 16 }),
    ]);
    expect(withKnn.charts.map((c) => c.id)).toEqual(['loss', 'lr', 'imagesPerSec', 'knn', 'selfPositives']);
    expect(withKnn.charts[0]!.series.map((x) => x.name)).toEqual(['loss', 'global']); // monitor values are not loss terms
    expect(withKnn.charts[3]!.series[0]!.points).toEqual([[2, 0.2]]);
    expect(withKnn.notes).toEqual([]);
  });
});

describe('feature PCA', () => {
  it('finds the direction of largest variance, then the next, and maps the projections to 0–255', () => {
    // Rows t·u + s·w (+ a fixed offset) with var(t) ≫ var(s): components ±u then ±w.
    const dims = 5;
    const u = [1, 2, 0, 0, 2].map((v) => v / 3);
    const w = [0, 0, 1, 0, 0];
    const n = 41;
    const rows = new Float32Array(n * dims);
    for (let i = 0; i < n; i++) {
      const t = i - 20;
      const s = ((i * 7) % 5) - 2;
      for (let d = 0; d < dims; d++) rows[i * dims + d] = 3 + t * u[d]! + s * w[d]!;
    }
    const { components, variances } = principalComponents(rows, dims, 3);
    expect(Math.abs(components[0]!.reduce((a, v, d) => a + v * u[d]!, 0))).toBeCloseTo(1, 6);
    expect(Math.abs(components[1]!.reduce((a, v, d) => a + v * w[d]!, 0))).toBeCloseTo(1, 6);
    expect(variances[0]!).toBeGreaterThan(variances[1]!);
    expect(variances[2]!).toBeCloseTo(0, 6);
    const rgb = pcaRgb(rows, dims);
    const red = Array.from({ length: n }, (_, i) => rgb[i * 3]!);
    expect(Math.min(...red)).toBe(0);
    expect(Math.max(...red)).toBe(255);
    const increasing = red.every((v, i) => i === 0 || v >= red[i - 1]!);
    const decreasing = red.every((v, i) => i === 0 || v <= red[i - 1]!);
    expect(increasing || decreasing).toBe(true); // red follows t (up to the component's sign)
    // The data has rank 2: the third direction holds only float noise, and blue stays dark.
    expect(Array.from({ length: n }, (_, i) => rgb[i * 3 + 2]!).every((v) => v === 0)).toBe(true);
  });
});

describe('densestream report', () => {
  let root: string;
  let run: string;
  let metrics: MetricsRecord[];
  const badName = 'bad <&" file.png';

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'densestream-report-'));
    // A folder of 12 scenes and one corrupt file whose name needs escaping.
    const data = join(root, 'data');
    mkdirSync(data);
    for (let i = 0; i < 12; i++) {
      const p = renderScene(0, i, 48).pixels as Pixels;
      await sharp(p.data, { raw: { width: p.width, height: p.height, channels: p.channels } })
        .png()
        .toFile(join(data, `scene-${String(i).padStart(2, '0')}.png`));
    }
    writeFileSync(join(data, badName), 'not a png');
    run = join(root, 'run');
    const train = cli(
      'train',
      '--data',
      `dir:${data}`,
      '--knn-data',
      'scenes',
      '--steps',
      '6',
      '--batch',
      '8',
      '--size',
      '32',
      '--log-every',
      '2',
      '--knn-every',
      '3',
      '--knn-size',
      '64',
      '--threads',
      '1',
      '--out',
      run,
    );
    expect(train.status, train.stderr).toBe(0);
    metrics = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as MetricsRecord);
    await selectBackend('wasm', { threads: 1 });
  }, 120_000);

  it('refuses a missing run, a run without a checkpoint and a bad flag with a ConfigError (exit 2), before any work', () => {
    const empty = mkdtempSync(join(tmpdir(), 'densestream-report-empty-'));
    expect(() => parseReportConfig([join(root, 'nope')])).toThrow(/RUN: no folder/);
    expect(() => parseReportConfig([empty])).toThrow(/RUN: no checkpoint in/);
    expect(() => parseReportConfig([])).toThrow(/RUN is required/);
    expect(() => parseReportConfig([run, '--images', '0'])).toThrow(/images/);
    expect(() => parseReportConfig([run, '--images', '65'])).toThrow(/at most 64/);
    expect(() => parseReportConfig([run, '--colour', 'x'])).toThrow(ConfigError);
    expect(parseReportConfig([run, '--out', 'x/r.html']).out).toBe(join(process.cwd(), 'x', 'r.html'));
    const r = cli('report', empty); // the CLI's exit code for any of them
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain('no checkpoint');
    expect(existsSync(join(empty, 'report.html'))).toBe(false);
  });

  let result: Awaited<ReturnType<typeof runReport>>;
  it('writes the page with tf.memory().numTensors flat, escaping the names of skipped inputs', async () => {
    const before = tf.memory().numTensors;
    result = await runReport(parseReportConfig([run, '--images', '6']));
    expect(tf.memory().numTensors).toBe(before); // encoder, features and attention maps all freed
    expect(result.out).toBe(join(run, 'report.html'));
    expect(result.images).toBe(6);
    expect(result.skipped).toBeGreaterThan(0);
    const html = readFileSync(result.out, 'utf8');
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/); // nothing to fetch (the SVG namespace is a name, not a request)
    expect(html).not.toContain(badName); // escaped, never raw
    expect(html).toContain(escapeHtml(badName));
  });

  it('shows the scores densestream eval saved for the run', async () => {
    const evaluated = join(root, 'evaluated');
    cpSync(run, evaluated, { recursive: true });
    writeFileSync(
      join(evaluated, 'eval.json'),
      JSON.stringify({ scenes: { knn: { step: 6, knn20: 0.3214 }, dense: { step: 4, denseMIoU: 0.125, denseIoU: { disc: 0.5 } } } }),
    );
    const html = readFileSync((await runReport(parseReportConfig([evaluated, '--images', '1']))).out, 'utf8');
    expect(html).toContain('<h2>Evaluation</h2>');
    expect(html).toContain('scenes: kNN top-1 (k = 20)</th><td>0.321 (step 6)');
    expect(html).toContain('scenes: dense probe mIoU</th><td>0.125 (step 4)'); // each score with the step it scored
    expect(readFileSync(result.out, 'utf8')).not.toContain('<h2>Evaluation</h2>'); // a run never evaluated has no such section
  });

  it.skipIf(!existsSync(CHROMIUM))(
    `shows whole in a browser: a chart point per logged value, decoded images, skipped list, config; no network, no errors${existsSync(CHROMIUM) ? '' : ` (skipped: no ${CHROMIUM}; apt-get install chromium)`}`,
    async () => {
      expect(result, 'the previous test wrote the page').toBeDefined();
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        const requests: string[] = [];
        page.on('console', (m) => {
          if (m.type() === 'error') errors.push(m.text());
        });
        page.on('pageerror', (e) => errors.push(e.message));
        page.on('request', (r) => requests.push(r.url()));
        await page.goto(pathToFileURL(result.out).href, { waitUntil: 'load' });

        const count = (chart: string, series: string) => page.locator(`svg[data-chart="${chart}"] circle[data-series="${series}"]`).count();
        const having = (value: (r: MetricsRecord) => number | undefined) => metrics.filter((r) => typeof value(r) === 'number').length;
        expect(metrics.length).toBe(3); // steps 2, 4, 6
        expect(await count('loss', 'loss')).toBe(having((r) => r.loss));
        for (const part of ['global', 'dense']) expect(await count('loss', part)).toBe(having((r) => r.parts[part]));
        expect(await count('lr', 'lr')).toBe(having((r) => r.lr));
        expect(await count('imagesPerSec', 'imagesPerSec')).toBe(having((r) => r.imagesPerSec));
        const knn = having((r) => r.parts['knn']);
        expect(knn).toBeGreaterThanOrEqual(1);
        expect(await count('knn', 'knn')).toBe(knn);
        expect(await page.locator('svg.chart').count()).toBe(4);

        const images = await page.$$eval('img', (els) =>
          els.map((e) => (e as unknown as { naturalWidth: number; complete: boolean }).naturalWidth),
        );
        expect(images.length).toBe(1 + 2 * result.images); // the views sheet, then an input and its PCA per image
        for (const w of images) expect(w).toBeGreaterThan(0);

        const skippedText = await page.locator('#skipped').innerText();
        expect(skippedText).toContain(badName);
        expect(skippedText).toContain('decode');
        const config = JSON.parse(await page.locator('#config').innerText()) as Record<string, unknown>;
        expect(config).toMatchObject({ steps: 6, batch: 8, size: 32, 'knn-every': 3, data: `dir:${join(root, 'data')}` });
        expect(await page.locator('body').innerText()).toContain('kNN first / last');

        expect(errors).toEqual([]);
        expect(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:'))).toEqual([]);
      } finally {
        await browser.close();
      }
    },
  );
});
