/**
 * `npm run results [-- --quick] [-- --resume] [-- --table scenes|fashion-mnist]`: the results tables. Trains every
 * method on the same data with the same budget (the same number of images seen), at the default
 * recipe (`pipelines/recipe.ts`) otherwise, evaluates each with every protocol of `densestream
 * eval` next to a random-init encoder, prints one JSON line per row, and writes each table's
 * section of `docs/RESULTS.md` with its commit, machine, backend and exact commands. The scenes
 * take every method; Fashion-MNIST, whose per-pixel truth is only the garments' silhouettes,
 * takes MoCo v2, DenseCL and the default method. `--table` runs only the tables named (default:
 * all) and rewrites only their sections, keeping the others as they were, each with the commit
 * and budget it came from: a table fits a sitting that the whole set does not.
 *
 * Each row trains and is scored once per seed (`--seeds N`: train and eval `--seed 0 … N−1`), and the
 * table gives each score's mean over the seeds with its standard error, which the checks read
 * (`results-stats.ts`). The default budget (three times the default run's length, three seeds)
 * takes about two and a half hours on 2 cores (Fashion-MNIST alone 50 minutes); one seed of it took 42; `--quick` (one seed) about fifteen. A longer budget (`--steps`) may outlast one sitting: `--resume` keeps
 * the rows already finished (each row's scores are saved in its folder as it ends), continues a
 * killed row's training from its last checkpoint, and refuses a folder of another commit or budget,
 * so that one table never mixes builds.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../core/atomic-file.js';
import { positiveInt } from '../pipelines/options.js';
import { DEFAULT_RECIPE } from '../pipelines/recipe.js';
import { benchFile, printJson } from './report.js';
import { above, estimate, margin, type Estimate } from './results-stats.js';

interface Row {
  name: string;
  /** Extra `train` flags beyond the method. */
  train: string[];
}

interface Table {
  /** `--data` of train and eval. */
  data: string;
  title: string;
  rows: Row[];
}

/**
 * The tables: on the scenes, METHODS.md §1–§4 plus the attention-driven views of §3; on
 * Fashion-MNIST, the baseline, the default and DenseCL, so the dense methods' check against
 * mocov2 on dense mIoU runs on a second data set (its truth: the garments' silhouettes).
 */
const TABLES: Table[] = [
  {
    data: 'scenes',
    title: 'Scenes',
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
    rows: [
      { name: 'mocov2', train: ['--method', 'mocov2'] },
      { name: 'densecl', train: ['--method', 'densecl'] },
      { name: 'hapicl', train: ['--method', 'hapicl'] },
    ],
  },
];

interface Budget {
  steps: number;
  /** Training seeds a row runs with: 0 … seeds − 1. */
  seeds: number;
  batch: number;
  train: number;
  test: number;
  denseTrain: number;
}

const BUDGETS: Record<'full' | 'quick', Budget> = {
  // Three times the default run's length, 2 700 × 64 = 172 800 images a row: at the default run's
  // budget only hapicl learned beyond noise (README, "Evaluation"); at three times it every method
  // but softrank does, and a row still trains in about 5 minutes here.
  full: { steps: 3 * DEFAULT_RECIPE.steps, seeds: 3, batch: DEFAULT_RECIPE.batch, train: 5000, test: 1000, denseTrain: 1000 },
  quick: { steps: 100, seeds: 1, batch: DEFAULT_RECIPE.batch, train: 1000, test: 300, denseTrain: 300 },
};

type Json = Record<string, unknown>;

const CLI = benchFile('../pipelines/cli.js');

/** Runs a densestream command, stderr passed through, and returns its last stdout line parsed. */
function densestream(args: string[]): Json {
  process.stderr.write(`$ densestream ${args.join(' ')}\n`);
  const run = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  if (run.status !== 0) throw new Error(`densestream ${args[0]} failed (exit ${run.status})`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as Json;
}

const fixed = (v: unknown, digits = 3) => (typeof v === 'number' ? v.toFixed(digits) : '–');

function gitCommit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return 'unknown';
  }
}

export async function resultsBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      resume: { type: 'boolean', default: false },
      steps: { type: 'string' },
      seeds: { type: 'string' },
      train: { type: 'string' },
      test: { type: 'string' },
      'dense-train': { type: 'string' },
      out: { type: 'string', default: 'runs/results' },
      doc: { type: 'string', default: 'docs/RESULTS.md' },
      table: { type: 'string' },
    },
  });
  const tables = selectTables(values.table);
  const budget = { ...BUDGETS[values.quick ? 'quick' : 'full'] };
  if (values.steps !== undefined) budget.steps = positiveInt(values.steps, '--steps');
  if (values.seeds !== undefined) budget.seeds = positiveInt(values.seeds, '--seeds');
  if (values.train !== undefined) budget.train = positiveInt(values.train, '--train');
  if (values.test !== undefined) budget.test = positiveInt(values.test, '--test');
  if (values['dense-train'] !== undefined) budget.denseTrain = positiveInt(values['dense-train'], '--dense-train');
  const root = values.out;
  const evalFlags = ['--train', String(budget.train), '--test', String(budget.test), '--dense-train', String(budget.denseTrain), '--quiet'];
  const commit = gitCommit(); // now: the tree may move on while the hours run
  // A table comes from one build and one budget only: the folder holds which, and a resume must match it.
  const marker = join(root, '.densestream-results');
  const identity = JSON.stringify({ commit, budget, quick: values.quick });
  if (values.resume) {
    if (!existsSync(marker)) throw new Error(`--resume: ${root} holds no results run; run without --resume to start one`);
    const held = readFileSync(marker, 'utf8');
    if (held !== identity) {
      throw new Error(
        `--resume: ${root} was started as ${held || 'an older results run'}, this is ${identity}; rows of another build or budget cannot share a table`,
      );
    }
    if (commit.includes('uncommitted'))
      throw new Error('--resume: the tree has uncommitted changes, so the build cannot be told apart; commit first');
  } else {
    // Cleared first, but only a folder this bench made.
    if (existsSync(root) && readdirSync(root).length > 0 && !existsSync(marker)) {
      throw new Error(`--out ${root}: exists and was not written by npm run results; name another folder`);
    }
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    writeFileSync(marker, identity);
  }
  // Seed by seed, so the first seed's table is whole before the next seed starts.
  const runs = new Map<string, SeedRun[]>();
  const add = (table: Table, name: string, run: SeedRun) => {
    const key = `${table.data}/${name}`;
    runs.set(key, [...(runs.get(key) ?? []), run]);
  };
  for (let seed = 0; seed < budget.seeds; seed++) {
    for (const table of tables) {
      const slug = (name: string) => join(root, `${table.data}-${name}-seed${seed}`.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, ''));
      const tableEval = [...evalFlags, '--data', table.data, '--seed', String(seed)];
      const random = finishedRow(slug('random-init'), () => ({
        seed,
        trainCommand: '–',
        result: densestream(['eval', '--checkpoint', 'random', '--out', slug('random-init'), ...tableEval]),
      }));
      add(table, 'random-init', random);
      printJson({ bench: 'results', data: table.data, row: 'random-init', seed, ...pick(random.result) });
      for (const row of table.rows) {
        const out = slug(row.name);
        const trainArgs = [
          'train',
          '--data',
          table.data,
          ...row.train,
          '--steps',
          String(budget.steps),
          '--batch',
          String(budget.batch),
          '--seed',
          String(seed),
          '--knn-every',
          '0',
          '--out',
          out,
        ];
        const done = finishedRow(out, () => {
          const train = trainedOnce(out, () =>
            // A killed row continues from its last checkpoint (every 100 steps), and its images/s is then
            // the last sitting's; one killed before its first checkpoint starts again.
            existsSync(join(out, 'checkpoint', 'weights.json'))
              ? densestream(['train', '--resume', '--steps', String(budget.steps), '--out', out])
              : densestream([...trainArgs, '--overwrite']),
          );
          const result = densestream(['eval', '--checkpoint', out, ...tableEval]);
          return { seed, trainCommand: `densestream ${trainArgs.join(' ')}`, result, train };
        });
        add(table, row.name, done);
        printJson({
          bench: 'results',
          data: table.data,
          row: row.name,
          seed,
          imagesPerSec: done.train?.['imagesPerSec'],
          ...pick(done.result),
        });
      }
    }
  }
  const results: TableResult[] = tables.map((table) => ({
    table,
    rows: ['random-init', ...table.rows.map((r) => r.name)].map((name) => ({ name, runs: runs.get(`${table.data}/${name}`) ?? [] })),
  }));
  const minutes = [...runs.values()].flat().reduce((m, r) => m + (r.minutes ?? 0), 0);
  const run: RunFacts = {
    argv: argv.filter((a) => a !== '--resume'), // the budget's flags, which a resume must repeat
    date: new Date().toISOString().slice(0, 10),
    commit,
    budget,
    evalFlags,
  };
  const sections = new Map(results.map((t) => [t.table.data, tableSection(t, run)]));
  writeFileSync(values.doc, resultsDoc(existsSync(values.doc) ? readFileSync(values.doc, 'utf8') : undefined, sections));
  printJson({ bench: 'results', doc: values.doc, tables: tables.map((t) => t.data), minutes });
}

/** `--table`'s tables, in the doc's order; all of them when not given. */
function selectTables(given: string | undefined): Table[] {
  if (given === undefined) return TABLES;
  const names = given.split(',');
  const unknown = names.filter((n) => !TABLES.some((t) => t.data === n));
  if (unknown.length > 0 || names.length === 0)
    throw new Error(`--table: expected ${TABLES.map((t) => t.data).join('|')} (or a comma list), got "${unknown.join(',') || given}"`);
  return TABLES.filter((t) => names.includes(t.data));
}

function pick(r: Json): Json {
  return { knn20: r['knn20'], knn200: r['knn200'], linear: r['linear'], denseMIoU: r['denseMIoU'], maskIoU: r['maskIoU'] };
}

/** One seed of a row. */
interface SeedRun {
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

/**
 * What `run` gives, saved at `file` as it ends (atomically: a sitting killed mid-write leaves no
 * half a file), or the one an earlier sitting saved there.
 */
function savedOnce<T>(file: string, run: () => T): T {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as T;
  const value = run();
  mkdirSync(dirname(file), { recursive: true });
  writeFileAtomic(file, JSON.stringify(value));
  return value;
}

/** A row's training summary, saved in its folder (a resume does not train a finished row again). */
function trainedOnce(dir: string, run: () => Json): Json {
  return savedOnce(join(dir, 'results-train.json'), run);
}

/** A row's result, saved in its folder, with its wall time (a sitting killed mid-row is not counted). */
function finishedRow(dir: string, run: () => SeedRun): SeedRun {
  return savedOnce(join(dir, 'results-row.json'), () => {
    const started = Date.now();
    return { ...run(), minutes: (Date.now() - started) / 60_000 };
  });
}

interface TableResult {
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
interface RunFacts {
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
function tableSection({ table, rows }: TableResult, run: RunFacts): string {
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
  const heldOut =
    table.data === 'scenes'
      ? `the first ${budget.train} of the training scenes as memory / training set, and every score is on ${budget.test} held-out scenes drawn from the generator's seed 1, which no run trains on`
      : `${budget.train} images of its training file as memory / training set, and every score is on ${budget.test} images of its test file`;
  const truth =
    table.data === 'scenes'
      ? "the scenes' own object masks and classes"
      : "each garment's silhouette (its non-zero pixels) labelled with its class";
  const lines = [
    sectionStart(table.data),
    `## ${table.title}`,
    '',
    `Written by \`npm run results${run.argv.length > 0 ? ` -- ${run.argv.join(' ')}` : ''}\` on ${run.date}, commit ${run.commit}, in ${minutes.toFixed(0)} minutes.`,
    `Machine: ${availableParallelism()} cores, Node ${process.version}, backend ${String(first['backend'] ?? 'unknown')}.`,
    `Every row trained the slim encoder at the default recipe (\`pipelines/recipe.ts\`: ${DEFAULT_RECIPE.size} px, queue ${DEFAULT_RECIPE.queue}, hue ${DEFAULT_RECIPE.hue}) for ${budget.steps} steps of ${budget.batch} images (${budget.steps * budget.batch} images seen), ${seeds}, each method's own defaults otherwise.`,
    `Evaluation (\`densestream eval --checkpoint RUN --data ${table.data} ${evalFlags.join(' ')}\`, at the training size): kNN and the linear probe use ${heldOut}.`,
    `The dense probe trains on ${budget.denseTrain} images and masks are 2-means on the encoder's feature cells, both scored against ${truth}.`,
    '',
    `Chance: ${table.data === 'scenes' ? '1/8 = 0.125' : '1/10 = 0.100'} for the image label` +
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
    ...parts.flatMap((p) => [p, '']),
  ].join('\n');
}
