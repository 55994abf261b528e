/**
 * The HTML of `densestream report`: pure functions from numbers and PNG bytes to one
 * self-contained page — inline SVG line charts, images as `data:` URIs, no script, no network
 * (a Content-Security-Policy forbids any fetch). Every piece of text is escaped here, so the
 * caller passes plain strings.
 */

/** Escapes text for HTML content and double- or single-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** One line of a chart: `points` as `[x, y]`, drawn as a polyline with a circle per point. */
export interface ChartSeries {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface LineChart {
  /** Stable id (`data-chart`), for tests and links. */
  id: string;
  title: string;
  xLabel: string;
  series: ChartSeries[];
}

/** The geometry every chart shares: SVG size and plot margins in px (the unit test reads it). */
export const CHART = { width: 520, height: 250, top: 44, right: 16, bottom: 40, left: 60 } as const;
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** About `count` round tick values inside [lo, hi] (steps of 1, 2 or 5 × 10^k). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const e = raw / mag; // in [1, 10): round to the nearest of 1, 2, 5, 10 on a log scale (as d3 does)
  const step = (e >= Math.sqrt(50) ? 10 : e >= Math.sqrt(10) ? 5 : e >= Math.sqrt(2) ? 2 : 1) * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

/** A number short enough for a tick label or a table cell (4 significant digits, no float noise). */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** [lo, hi] of the values, widened when all are equal so a flat line sits mid-plot. */
function extent(values: number[]): [number, number] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  if (hi > lo) return [lo, hi];
  const pad = Math.abs(lo) * 0.1 || 0.5;
  return [lo - pad, hi + pad];
}

/**
 * An SVG line chart with axes, round tick labels, a legend when there are several series, and
 * one `<circle data-series=NAME>` per point (its `<title>` gives the values). The x and y
 * domains are the data's extent: the first and last points sit on the plot's edges.
 */
export function lineChartSvg(chart: LineChart): string {
  const all = chart.series.flatMap((s) => s.points);
  const { width, height, top, right, bottom, left } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const [x0, x1] = extent(all.map((p) => p[0]));
  const [y0, y1] = extent(all.map((p) => p[1]));
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y: number) => top + plotH - ((y - y0) / (y1 - y0)) * plotH;
  const r = (v: number) => Number(v.toFixed(2));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="${escapeHtml(chart.id)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(chart.title)}">`,
    `<text x="${left}" y="18" class="chart-title">${escapeHtml(chart.title)}</text>`,
  ];
  // Grid lines and tick labels first, so the data is drawn over them.
  for (const t of niceTicks(y0, y1)) {
    parts.push(
      `<line class="grid" x1="${left}" x2="${left + plotW}" y1="${r(sy(t))}" y2="${r(sy(t))}"/>`,
      `<text class="tick" x="${left - 6}" y="${r(sy(t)) + 4}" text-anchor="end">${escapeHtml(formatNumber(t))}</text>`,
    );
  }
  for (const t of niceTicks(x0, x1, 6)) {
    parts.push(
      `<line class="axis" x1="${r(sx(t))}" x2="${r(sx(t))}" y1="${top + plotH}" y2="${top + plotH + 5}"/>`,
      `<text class="tick" x="${r(sx(t))}" y="${top + plotH + 18}" text-anchor="middle">${escapeHtml(formatNumber(t))}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}"/>`,
    `<line class="axis" x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}"/>`,
    `<text class="axis-label" x="${left + plotW / 2}" y="${height - 4}" text-anchor="middle">${escapeHtml(chart.xLabel)}</text>`,
  );
  chart.series.forEach((s, k) => {
    const colour = COLOURS[k % COLOURS.length] as string;
    const name = escapeHtml(s.name);
    const xy = s.points.map(([x, y]) => [r(sx(x)), r(sy(y))] as const);
    if (xy.length > 1)
      parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${xy.map(([x, y]) => `${x},${y}`).join(' ')}"/>`);
    s.points.forEach(([x, y], i) => {
      const [cx, cy] = xy[i] as readonly [number, number];
      parts.push(
        `<circle data-series="${name}" cx="${cx}" cy="${cy}" r="2.5" fill="${colour}"><title>${name} ${escapeHtml(formatNumber(x))}: ${escapeHtml(formatNumber(y))}</title></circle>`,
      );
    });
    if (chart.series.length > 1) {
      const lx = left + 4 + k * 92;
      parts.push(
        `<rect x="${lx}" y="27" width="10" height="10" fill="${colour}"/><text class="legend" x="${lx + 14}" y="36">${name}</text>`,
      );
    }
  });
  parts.push('</svg>');
  return parts.join('');
}

/** A PNG as an `<img>` with a `data:` URI. */
export function pngImg(png: Uint8Array, alt: string, className = ''): string {
  const cls = className ? ` class="${escapeHtml(className)}"` : '';
  return `<img${cls} alt="${escapeHtml(alt)}" src="data:image/png;base64,${Buffer.from(png).toString('base64')}">`;
}

/** What the report page shows; text is plain (escaped here), images are PNG bytes. */
export interface ReportContent {
  title: string;
  /** Lines under the title (run folder, checkpoint step, when the report was made). */
  subtitle: string[];
  /** The run's summary numbers, label → value. */
  summary: Array<readonly [string, string]>;
  charts: LineChart[];
  /** Sentences in place of charts that have no data (e.g. "No kNN accuracy was logged"). */
  chartNotes: string[];
  views: { sheets: Uint8Array[]; caption: string; note?: string };
  pca: { rows: Array<{ id: string; image: Uint8Array; pca: Uint8Array }>; caption: string; note?: string };
  skipped: Array<{ id: string; stage: string; reason: string }>;
  config: Record<string, unknown>;
  /** Scores `densestream eval` saved for the run (label → value), absent when it was not evaluated. */
  evaluation?: Array<readonly [string, string]>;
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1120px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.sub{color:#666;margin:0}.charts{display:flex;flex-wrap:wrap;gap:8px}
.chart{background:#fafafa;border:1px solid #e4e4e4}.chart-title{font-weight:600;font-size:13px}
.tick,.legend,.axis-label{font-size:11px;fill:#444}.grid{stroke:#e6e6e6}.axis{stroke:#888}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
th{font-weight:600;color:#444}.sheet{max-width:100%;display:block;margin-bottom:6px}
.pca{display:flex;flex-wrap:wrap;gap:12px}.pca figure{margin:0;text-align:center;font-size:11px;color:#555}
.pca img{width:128px;height:128px;image-rendering:pixelated;margin:1px}
.note,figcaption.caption{color:#666}pre{background:#f5f5f5;padding:8px;overflow:auto}`;

const table = (rows: Array<readonly [string, string]>) =>
  `<table>${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>`;
const note = (text: string) => `<p class="note">${escapeHtml(text)}</p>`;

/** The whole page. */
export function reportHtml(c: ReportContent): string {
  const skipped =
    c.skipped.length === 0
      ? '<p id="skipped-none">none</p>'
      : `<table id="skipped"><tr><th>id</th><th>stage</th><th>reason</th></tr>${c.skipped.map((s) => `<tr><td>${escapeHtml(s.id)}</td><td>${escapeHtml(s.stage)}</td><td>${escapeHtml(s.reason)}</td></tr>`).join('')}</table>`;
  const pca = c.pca.rows
    .map(
      (r) =>
        `<figure>${pngImg(r.image, `input ${r.id}`)}${pngImg(r.pca, `PCA of ${r.id}`)}<figcaption>${escapeHtml(r.id)}</figcaption></figure>`,
    )
    .join('');
  return [
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
    // No script, and nothing may be fetched: the page is whole as written.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">`,
    `<title>${escapeHtml(c.title)}</title><style>${STYLE}</style></head><body>`,
    `<h1>${escapeHtml(c.title)}</h1>${c.subtitle.map((s) => `<p class="sub">${escapeHtml(s)}</p>`).join('')}`,
    `<h2>Summary</h2>${table(c.summary)}`,
    c.evaluation ? `<h2>Evaluation</h2><div id="evaluation">${table(c.evaluation)}</div>` : '',
    `<h2>Training curves</h2><div class="charts">${c.charts.map(lineChartSvg).join('')}</div>${c.chartNotes.map(note).join('')}`,
    `<h2>Training views</h2><p class="note">${escapeHtml(c.views.caption)}</p>${c.views.note ? note(c.views.note) : ''}${c.views.sheets.map((png, i) => pngImg(png, `training views, sheet ${i + 1}`, 'sheet')).join('')}`,
    `<h2>Dense features (PCA)</h2><p class="note">${escapeHtml(c.pca.caption)}</p>${c.pca.note ? note(c.pca.note) : ''}<div class="pca">${pca}</div>`,
    `<h2>Skipped inputs</h2>${skipped}`,
    `<h2>Configuration</h2><pre id="config">${escapeHtml(JSON.stringify(c.config, null, 2))}</pre>`,
    '</body></html>\n',
  ].join('');
}
