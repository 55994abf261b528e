/**
 * `npm run results [-- --quick] [-- --resume] [-- --table scenes|fashion-mnist]`: the results tables. Trains every
 * method on the same data with the same budget (the same number of images seen), at the default
 * recipe (`pipelines/recipe.ts`) otherwise, evaluates each with every protocol of `densestream
 * eval` next to a random-init encoder, prints one JSON line per row, and writes each table's
 * section of `docs/RESULTS.md` with its commit, machine, backend and exact commands (the tables,
 * their rows and their sections: `results-tables.ts`). `--table` runs only the tables named (default:
 * all) and rewrites only their sections, keeping the others as they were, each with the commit
 * and budget it came from: a table fits a sitting that the whole set does not.
 *
 * Each row trains and is scored once per seed (`--seeds N`: train and eval `--seed 0 … N−1`), and the
 * table gives each score's mean over the seeds with its standard error, which the checks read
 * (`results-stats.ts`). The default budget (2 700 steps of 64 a row, the default run's length, and three seeds)
 * takes about two hours and forty minutes on 2 cores (the scenes 92 minutes, Fashion-MNIST 66); one seed of it took 42; `--quick` (one seed) about fifteen. A longer budget (`--steps`) may outlast one sitting: `--resume` keeps
 * the rows already finished (each row's scores are saved in its folder as it ends), continues a
 * killed row's training from its last checkpoint, and refuses a folder of another commit or budget,
 * so that one table never mixes builds.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../core/atomic-file.js';
import { positiveInt } from '../pipelines/options.js';
import { DEFAULT_RECIPE } from '../pipelines/recipe.js';
import { benchFile, printJson } from './report.js';
import {
  resultsDoc,
  tableSection,
  TABLES,
  type Budget,
  type Json,
  type RunFacts,
  type SeedRun,
  type Table,
  type TableResult,
} from './results-tables.js';

const BUDGETS: Record<'full' | 'quick', Budget> = {
  // 2 700 × 64 = 172 800 images a row, the default run's length since that grew from 900 steps to
  // meet this budget (pipelines/recipe.ts). At 900 only hapicl learned beyond noise; at 2 700
  // every method but softrank does on the scenes, and a row trains in about 5 minutes here.
  // Written as a number, not a multiple of the recipe's: the tables keep their budget when the
  // recipe moves (3 × the recipe had silently become 8 100 steps, three times the tables').
  full: { steps: 2700, seeds: 3, batch: DEFAULT_RECIPE.batch, train: 5000, test: 1000, denseTrain: 1000 },
  quick: { steps: 100, seeds: 1, batch: DEFAULT_RECIPE.batch, train: 1000, test: 300, denseTrain: 300 },
};

const CLI = benchFile('../pipelines/cli.js');

/** Runs a densestream command, stderr passed through, and returns its last stdout line parsed. */
function densestream(args: string[]): Json {
  process.stderr.write(`$ densestream ${args.join(' ')}\n`);
  const run = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  if (run.status !== 0) throw new Error(`densestream ${args[0]} failed (exit ${run.status})`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as Json;
}

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
  if (unknown.length > 0)
    throw new Error(`--table: expected ${TABLES.map((t) => t.data).join('|')} (or a comma list), got "${unknown.join(',') || given}"`);
  return TABLES.filter((t) => names.includes(t.data));
}

function pick(r: Json): Json {
  return { knn20: r['knn20'], knn200: r['knn200'], linear: r['linear'], denseMIoU: r['denseMIoU'], maskIoU: r['maskIoU'] };
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
