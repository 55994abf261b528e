/**
 * The results tables (`npm run results`): which rows each table trains, what it is scored
 * against, and how a table is written into its section of docs/RESULTS.md, between markers, so
 * that a run of some tables rewrites only theirs. `results.ts` runs the rows; `results-stats.ts`
 * holds the arithmetic of a score over seeds.
 */
import { availableParallelism } from 'node:os';
import { DEFAULT_RECIPE } from '../pipelines/recipe.js';
import { above, estimate, margin, type Estimate } from './results-stats.js';

export type Json = Record<string, unknown>;

interface Row {
  name: string;
  /** Extra `train` flags beyond the method. */
  train: string[];
}

export interface Table {
  /** `--data` of train and eval. */
  data: string;
  title: string;
  rows: Row[];
  /** The image label's chance level, as the doc writes it. */
  chance: string;
  /** What kNN and the linear probe learn from and are scored on, given `--train` and `--test`. */
  heldOut(train: number, test: number): string;
  /** What the dense probe and the masks are scored against. */
  truth: string;
}

/**
 * The tables: on the scenes, METHODS.md §1–§4 plus the attention-driven views of §3; on
 * Fashion-MNIST, §0–§2 and §4: the dense methods' check against mocov2 on dense mIoU runs on a
 * second data set (its truth: the garments' silhouettes), and softrank is scored where its
 * clustering positives share their anchor's class far more often than chance (on the scenes
 * they do not: docs/experiments.md, "softrank").
 */
export const TABLES: Table[] = [
  {
    data: 'scenes',
    title: 'Scenes',
    chance: '1/8 = 0.125',
    heldOut: (train, test) =>
      `the first ${train} of the training scenes as memory / training set, and every score is on ${test} held-out scenes drawn from the generator's seed 1, which no run trains on`,
    truth: "the scenes' own object masks and classes",
    rows: [
      { name: 'mocov2', train: ['--method', 'mocov2'] },
      { name: 'densecl', train: ['--method', 'densecl'] },
      { name: 'hapicl', train: ['--method', 'hapicl'] },
      { name: 'softrank', train: ['--method', 'softrank'] },
      { name: 'densecl --attention-view', train: ['--method', 'densecl', '--attention-view'] },
    ],
  },
  {
    data: 'fashion-mnist',
    title: 'Fashion-MNIST',
    chance: '1/10 = 0.100',
    heldOut: (train, test) =>
      `${train} images of its training file as memory / training set, and every score is on ${test} images of its test file`,
    truth: "each garment's silhouette (its non-zero pixels) labelled with its class",
    rows: [
      { name: 'mocov2', train: ['--method', 'mocov2'] },
      { name: 'densecl', train: ['--method', 'densecl'] },
      { name: 'hapicl', train: ['--method', 'hapicl'] },
      { name: 'softrank', train: ['--method', 'softrank'] },
    ],
  },
];

export interface Budget {
  steps: number;
  /** Training seeds a row runs with: 0 … seeds − 1. */
  seeds: number;
  batch: number;
  train: number;
  test: number;
  denseTrain: number;
}

/** One seed of a row. */
export interface SeedRun {
  seed: number;
  trainCommand: string;
  result: Json;
  train?: Json;
  /** Wall time of its training and evaluation, summed over sittings. */
  minutes?: number;
}

interface RowResult {
  name: string;
  /** In seed order. */
  runs: SeedRun[];
}

const fixed = (v: unknown, digits = 3) => (typeof v === 'number' ? v.toFixed(digits) : '–');

export interface TableResult {
  table: Table;
  rows: RowResult[];
}

/** A top-1 score: its standard error counts the test split's sampling too. */
const TOP1 = new Set(['knn20', 'knn200', 'linear']);

/** The seeds' estimate of `key` for a row. */
function scoreOf(row: RowResult, key: string, test: number): Estimate {
  const values = row.runs.map((r) => (typeof r.result[key] === 'number' ? (r.result[key] as number) : NaN));
  return estimate(values, TOP1.has(key) ? test : undefined);
}

/** The expected shape of one table, row by row: above random-init, and the dense methods above mocov2 on dense mIoU where scored. */
function shapeChecks(rows: RowResult[], test: number): string[] {
  const [random, ...trained] = rows;
  if (random === undefined) return [];
  const check = (a: RowResult, b: RowResult, key: string, what: string) => {
    const [x, y] = [scoreOf(a, key, test), scoreOf(b, key, test)];
    const need = margin(x, y);
    const gap = x.mean - y.mean;
    const numbers = `${x.mean.toFixed(3)} against ${y.mean.toFixed(3)}, a gap of ${gap >= 0 ? '+' : '−'}${Math.abs(gap).toFixed(3)}`;
    return `- ${above(x, y)}: ${a.name} above ${b.name} on ${what} (${numbers}${Number.isFinite(need) ? `; two standard errors: ${need.toFixed(3)}` : ''})`;
  };
  const scored = (key: string) => trained.filter((r) => Number.isFinite(scoreOf(r, key, test).mean));
  const moco = scored('denseMIoU').find((r) => r.name === 'mocov2');
  return [
    ...trained.map((r) => check(r, random, 'knn20', 'kNN (k = 20)')),
    ...scored('denseMIoU').map((r) => check(r, random, 'denseMIoU', 'dense mIoU')),
    ...(moco === undefined
      ? []
      : scored('denseMIoU')
          .filter((r) => r.name === 'densecl' || r.name === 'hapicl')
          .map((r) => check(r, moco, 'denseMIoU', 'dense mIoU'))),
  ];
}

/** The table's score columns: a key of `eval`'s JSON and its heading. */
const COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['knn20', 'kNN k=20'],
  ['knn200', 'kNN k=200'],
  ['linear', 'linear'],
  ['denseMIoU', 'dense mIoU'],
  ['densePixelAccuracy', 'pixel acc.'],
  ['maskIoU', 'mask IoU'],
];

/** What a results run was: its flags, day, build, budget and eval flags, written into each table it made. */
export interface RunFacts {
  argv: string[];
  date: string;
  commit: string;
  budget: Budget;
  evalFlags: string[];
}

/** The marker lines around a table's section of the doc, so that a run of some tables rewrites only theirs. */
const sectionStart = (data: string) => `<!-- results: ${data} -->`;
const sectionEnd = (data: string) => `<!-- /results: ${data} -->`;

/** One table's section of the doc, between its markers: how it was made, its rows, its checks, each seed, its commands. */
export function tableSection({ table, rows }: TableResult, run: RunFacts): string {
  const { budget, evalFlags } = run;
  const first = rows[0]?.runs[0]?.result ?? {};
  const minutes = rows.flatMap((r) => r.runs).reduce((m, r) => m + (r.minutes ?? 0), 0);
  const seeds = budget.seeds === 1 ? 'seed 0' : `seeds 0–${budget.seeds - 1} (\`train --seed S\`, \`eval --seed S\`)`;
  const cell = (e: Estimate) =>
    Number.isNaN(e.mean) ? '–' : Number.isFinite(e.se) ? `${e.mean.toFixed(3)} ± ${e.se.toFixed(3)}` : e.mean.toFixed(3);
  const speed = (runs: SeedRun[]) => {
    const rates = runs.map((r) => r.train?.['imagesPerSec']).filter((v): v is number => typeof v === 'number');
    return rates.length === 0 ? '–' : (rates.reduce((a, b) => a + b, 0) / rates.length).toFixed(1);
  };
  // A column only where the table has a score in it (data without per-pixel truth has no dense or mask scores).
  const columns = COLUMNS.filter(([key]) => rows.some((r) => r.runs.some((x) => typeof x.result[key] === 'number')));
  const header = [
    `| method | images/s | ${columns.map(([, label]) => label).join(' | ')} |`,
    `|---|---|${columns.map(() => '---|').join('')}`,
  ];
  const lines = [
    sectionStart(table.data),
    `## ${table.title}`,
    '',
    `Written by \`npm run results${run.argv.length > 0 ? ` -- ${run.argv.join(' ')}` : ''}\` on ${run.date}, commit ${run.commit}, in ${minutes.toFixed(0)} minutes.`,
    `Machine: ${availableParallelism()} cores, Node ${process.version}, backend ${String(first['backend'] ?? 'unknown')}${typeof first['kernelBuild'] === 'string' ? ` (densestream's kernels: ${first['kernelBuild']})` : ''}.`,
    `Every row trained the slim encoder at the default recipe (\`pipelines/recipe.ts\`: ${DEFAULT_RECIPE.size} px, queue ${DEFAULT_RECIPE.queue}, hue ${DEFAULT_RECIPE.hue}) for ${budget.steps} steps of ${budget.batch} images (${budget.steps * budget.batch} images seen), ${seeds}, each method's own defaults otherwise.`,
    `Evaluation (\`densestream eval --checkpoint RUN --data ${table.data} ${evalFlags.join(' ')}\`, at the training size): kNN and the linear probe use ${table.heldOut(budget.train, budget.test)}.`,
    `The dense probe trains on ${budget.denseTrain} images and masks are 2-means on the encoder's feature cells, both scored against ${table.truth}.`,
    '',
    `Chance: ${table.chance} for the image label` +
      (typeof first['maskIoUAllForeground'] === 'number'
        ? `; an all-foreground mask scores ${fixed(first['maskIoUAllForeground'])} mask IoU.`
        : '.'),
    `Each score is the mean over ${seeds}, ± its standard error: the seeds' spread / √${budget.seeds}${budget.seeds === 1 ? ' (none with one seed)' : ''}, and for a top-1 p (kNN, linear) also the test split's own sampling error, √(p(1−p)/${budget.test}). Images/s is the seeds' mean.`,
    '',
    ...header,
    ...rows.map((r) => `| ${r.name} | ${speed(r.runs)} | ${columns.map(([k]) => cell(scoreOf(r, k, budget.test))).join(' | ')} |`),
    '',
    'The expected shape, checked: a gap counts only beyond two standard errors of the difference, √(SE₁² + SE₂²), read as independent (the rows share one test split, so this errs toward "within noise"):',
    '',
    ...shapeChecks(rows, budget.test),
    '',
  ];
  if (budget.seeds > 1) {
    lines.push(
      `### ${table.title}: each seed`,
      '',
      header[0]!.replace('| method |', '| method | seed |'),
      header[1]! + '---|',
      ...rows.flatMap((r) =>
        r.runs.map(
          (x) =>
            `| ${r.name} | ${x.seed} | ${x.train ? fixed(x.train['imagesPerSec'], 1) : '–'} | ${columns.map(([k]) => fixed(x.result[k])).join(' | ')} |`,
        ),
      ),
      '',
    );
  }
  lines.push(
    `### ${table.title}: commands`,
    '',
    '```',
    ...rows.slice(1).flatMap((r) => r.runs.map((x) => x.trainCommand)),
    '```',
    sectionEnd(table.data),
  );
  return lines.join('\n');
}

/** A table's section as `doc` holds it, markers included; undefined when it has none (or an unclosed one). */
function sectionOf(doc: string, data: string): string | undefined {
  const start = doc.indexOf(sectionStart(data));
  if (start < 0) return undefined;
  const end = doc.indexOf(sectionEnd(data), start);
  return end < 0 ? undefined : doc.slice(start, end + sectionEnd(data).length);
}

/**
 * The results doc: the tables in their order, each the section just made (`sections`, by
 * `--data`) or, for a table this run did not make, its section in `existing` as it was. A table
 * in neither is left out; text of `existing` outside the sections is not kept.
 */
export function resultsDoc(existing: string | undefined, sections: ReadonlyMap<string, string>): string {
  const parts = TABLES.map((t) => sections.get(t.data) ?? (existing === undefined ? undefined : sectionOf(existing, t.data))).filter(
    (x): x is string => x !== undefined,
  );
  return [
    '# Results',
    '',
    'Each table below says which `npm run results` command, commit, budget and machine made it; `npm run results -- --table NAME` makes one table again and keeps the others as they are.',
    '',
    "A table's machine line names the build of densestream's kernels it ran. The relaxed-SIMD build (fused multiply-adds: Node 22, and Node 20 under the CLI since 2026-12-05) ends a run at a different point of the same distribution from the SIMD build's, so a table made on the SIMD build repeats to the digit with `DENSESTREAM_RELAXED_SIMD=0 npm run results`.",
    '',
    ...parts.flatMap((p) => [p, '']),
  ].join('\n');
}
