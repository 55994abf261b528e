/**
 * `npm run bench -- twin-knn [--steps 150] [--batch 128] [--size 28] [--test 10000] [--seed 0 | A-B | A,B,…]
 * [--resample centres|libvips] [--sides torch,torchReferenceInit,torchSameInit,torchSameInitSeconds]
 * [--init densestream|reference]`: MoCo v2 on Fashion-MNIST at equal wall time (issue #16).
 *
 * densestream trains `--steps` steps; the PyTorch twin (`torch_moco_twin.py --schedule`:
 * densestream's warm-up + cosine and decoupled weight decay) then trains for the same number of
 * seconds. Both are scored by the same kNN protocol, each against its own random init:
 * `densestream eval --protocol knn --train 5000 --test N` on the checkpoint and on
 * `--checkpoint random`, and the twin's own implementation of that protocol. The twin's sides:
 * - `torch`: from PyTorch's layer defaults, for the same seconds;
 * - `torchReferenceInit`: from torchvision's ResNet initialisation (convolutions He-normal on
 *   fan_out, as the MoCo and DenseCL code draws them), for the same seconds;
 * - `torchSameInit`: from densestream's own initial weights, for `--steps` steps (equal images),
 *   which separates learning from speed: its knnInit is densestream's random-init score;
 * - `torchSameInitSeconds`: from densestream's own initial weights, for the same seconds. Item 3
 *   on one draw: both sides start from the same score, so the two gains differ only by what each
 *   learned in the seconds, where the other sides' gains also carry the luck of two draws.
 *
 * `--sides` trains only the twin sides named (the first three by default; each costs a run and
 * two kNN scores). `--resample libvips` has the twin cut its views at the offset libvips' enlargement takes
 * (half an output pixel early, which densestream copied until December 2026) instead of at the
 * half-pixel centres torchvision and densestream sample. `--init reference` has densestream
 * draw its weights as the twin's `torchReferenceInit` side does (`train --init`, models/weight-init.ts).
 *
 * Prints a line per seed, `{"bench":"twin-knn", "seed", "seconds", "densestream":{…}, "torch":{…},
 * "torchReferenceInit":{…}, "torchSameInit":{…}}`, each side with steps, images, knnInit, knnFinal,
 * gain and its standard error. With more than one seed (`--seed 0-9`) a last line sums them up
 * (`summariseTwinKnn`): each side's mean scores, and densestream's gain and final score against
 * each twin side's, paired seed by seed. A gain from one draw depends on where that draw starts
 * (a draw that scores lower at init has more to gain), so a comparison of gains needs many seeds.
 * If a seed fails, the seeds done before it are still summed up (two or more), then the error.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { knnGainStdErr } from '../train/knn-monitor.js';
import { positiveInt } from '../pipelines/options.js';
import { printJson, pythonHas, runChecked, runForJson, SYSTEM_PYTHON } from './report.js';
import { estimate, pairedGap, type Estimate, type Verdict } from './results-stats.js';
import { TWIN_TASK, torchTwin } from './twin.js';
import { WEIGHT_INITS, type WeightInit } from '../models/weight-init.js';

/** One side of one seed: what it trained and its kNN k=20 before and after. */
export interface TwinKnnSide {
  steps: number;
  images: number;
  knnInit: number;
  knnFinal: number;
  gain: number;
  gainStdErr: number;
  /** Training wall time, on the twin's sides. */
  seconds?: number;
}

export const TWIN_SIDES = ['torch', 'torchReferenceInit', 'torchSameInit', 'torchSameInitSeconds'] as const;
export type TwinSide = (typeof TWIN_SIDES)[number];

export type TwinKnnLine = {
  bench: 'twin-knn';
  seed: number;
  resample: string;
  /** densestream's weight draw (`train --init`). */
  init: WeightInit;
  seconds: number;
  test: number;
  densestream: TwinKnnSide;
} & Partial<Record<TwinSide, TwinKnnSide>>;

type Paired = Estimate & { verdict: Verdict };

/** The last line of a run over several seeds. */
export type TwinKnnSummary = {
  bench: 'twin-knn';
  seeds: number[];
  steps: number;
  test: number;
  resample: string;
  init: WeightInit;
  /** Each side's scores over the seeds (mean, spread, standard error of the mean), its mean images and, on the twin's sides, training seconds. */
  sides: { densestream: SideSummary } & Partial<Record<TwinSide, SideSummary>>;
  /**
   * densestream minus each twin side, seed by seed: its gain, and its final score. Only
   * `torchSameInit` and `torchSameInitSeconds` share a seed's initial weights with densestream; for the other two the
   * pairing by seed number is arbitrary (PyTorch draws its own weights, order and views), which
   * keeps the mean unbiased and costs degrees of freedom.
   */
  gainOver: Partial<Record<TwinSide, Paired>>;
  finalOver: Partial<Record<TwinSide, Paired>>;
};

type SideSummary = { knnInit: Estimate; knnFinal: Estimate; gain: Estimate; images: number; seconds: number };

/**
 * Sums up `lines`, one per seed. The standard errors are the seeds' spread only: every seed is
 * scored on the same test images, so the split's own sampling error is not averaged away and is
 * not in them (it is in each line's `gainStdErr`).
 */
export function summariseTwinKnn(lines: readonly TwinKnnLine[]): TwinKnnSummary {
  const first = lines[0];
  if (first === undefined) throw new Error('summariseTwinKnn: no seeds');
  // one run trains the same sides for every seed (`--sides`); a mix would pair unlike seeds
  const twins = TWIN_SIDES.filter((side) => first[side] !== undefined);
  for (const l of lines) {
    const has = TWIN_SIDES.filter((side) => l[side] !== undefined);
    if (has.join() !== twins.join()) throw new Error(`summariseTwinKnn: seed ${l.seed} has sides [${has}], seed ${first.seed} [${twins}]`);
    if (l.init !== first.init)
      throw new Error(`summariseTwinKnn: seed ${l.seed} drew --init ${l.init}, seed ${first.seed} --init ${first.init}`);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const of = (pick: (l: TwinKnnLine) => TwinKnnSide): SideSummary => ({
    knnInit: estimate(lines.map((l) => pick(l).knnInit)),
    knnFinal: estimate(lines.map((l) => pick(l).knnFinal)),
    gain: estimate(lines.map((l) => pick(l).gain)),
    images: Math.round(mean(lines.map((l) => pick(l).images))),
    seconds: Number(mean(lines.map((l) => pick(l).seconds ?? l.seconds)).toFixed(2)),
  });
  const twin = (side: TwinSide) => (l: TwinKnnLine) => l[side] as TwinKnnSide; // checked above
  const paired = (key: 'gain' | 'knnFinal') =>
    Object.fromEntries(
      twins.map((side) => [
        side,
        pairedGap(
          lines.map((l) => l.densestream[key]),
          lines.map((l) => twin(side)(l)[key]),
        ),
      ]),
    ) as Partial<Record<TwinSide, Paired>>;
  return {
    bench: 'twin-knn',
    seeds: lines.map((l) => l.seed),
    steps: first.densestream.steps,
    test: first.test,
    resample: first.resample,
    init: first.init,
    sides: { densestream: of((l) => l.densestream), ...Object.fromEntries(twins.map((side) => [side, of(twin(side))])) },
    gainOver: paired('gain'),
    finalOver: paired('knnFinal'),
  };
}

/** `--sides`: the twin sides to train, a list of `TWIN_SIDES` names, each once. */
export function parseSides(value: string): TwinSide[] {
  const names = value.split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(TWIN_SIDES as readonly string[]).includes(name))
      throw new Error(`--sides: expected a list of ${TWIN_SIDES.join('|')}, got "${value}"`);
  }
  if (new Set(names).size !== names.length) throw new Error(`--sides: "${value}" names a side twice`);
  return TWIN_SIDES.filter((side) => names.includes(side)); // the order they run and print in
}

/** The most seeds one run takes: each costs minutes. */
const MAX_SEEDS = 100;

/** `--seed`: one seed, a range `A-B` (both ends included) or a list `A,B,…`; each an integer ≥ 0, at most `MAX_SEEDS` of them. */
export function parseSeeds(value: string): number[] {
  const bad = () => new Error(`--seed: expected an integer ≥ 0, a range A-B or a list A,B,…, got "${value}"`);
  const int = (s: string) => {
    if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(Number(s))) throw bad();
    return Number(s);
  };
  const range = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(value);
  if (range) {
    const [from, to] = [int(range[1] as string), int(range[2] as string)];
    if (to < from) throw bad();
    if (to - from + 1 > MAX_SEEDS) throw new Error(`--seed: "${value}" names ${to - from + 1} seeds, more than ${MAX_SEEDS}`);
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  }
  const seeds = value.split(',').map(int);
  if (new Set(seeds).size !== seeds.length) throw new Error(`--seed: "${value}" names a seed twice`);
  if (seeds.length > MAX_SEEDS) throw new Error(`--seed: "${value}" names ${seeds.length} seeds, more than ${MAX_SEEDS}`);
  return seeds;
}

interface Task {
  sides: TwinSide[];
  steps: number;
  batch: number;
  size: number;
  test: number;
  resample: string;
  init: WeightInit;
}

export async function twinKnnBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: 'string', default: '150' },
      batch: { type: 'string', default: '128' },
      size: { type: 'string', default: '28' },
      test: { type: 'string', default: '10000' },
      seed: { type: 'string', default: '0' },
      resample: { type: 'string', default: 'centres' },
      sides: { type: 'string', default: 'torch,torchReferenceInit,torchSameInit' },
      init: { type: 'string', default: 'densestream' },
    },
  });
  if (!['centres', 'libvips'].includes(values.resample)) throw new Error(`--resample: expected centres|libvips, got "${values.resample}"`);
  const init = WEIGHT_INITS.find((w) => w === values.init);
  if (!init) throw new Error(`--init: expected ${WEIGHT_INITS.join('|')}, got "${values.init}"`);
  const seeds = parseSeeds(values.seed);
  const task: Task = {
    sides: parseSides(values.sides),
    steps: positiveInt(values.steps, '--steps'),
    batch: positiveInt(values.batch, '--batch'),
    size: positiveInt(values.size, '--size'),
    test: positiveInt(values.test, '--test'),
    resample: values.resample,
    init,
  };
  if (!pythonHas('torch')) throw new Error('twin-knn: needs PyTorch for its other side (apt-get install python3-torch)');
  const lines: TwinKnnLine[] = [];
  // Ctrl-C reaches the children too (one process group): the side running dies, its spawnSync
  // returns, and the seed's `finally` removes its scratch folder. Without a listener Node would
  // exit on the signal at once and leave the folder in /tmp.
  const onInterrupt = () => undefined;
  process.on('SIGINT', onInterrupt);
  try {
    for (const seed of seeds) {
      const line = oneSeed(task, seed);
      printJson(line);
      lines.push(line);
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    // a failed seed keeps the summary of those before it: each took minutes
    if (lines.length > 1) printJson(summariseTwinKnn(lines));
  }
}

/** Every side of one seed, in a scratch folder removed whatever happens. */
function oneSeed(task: Task, seed: number): TwinKnnLine {
  const dir = mkdtempSync(join(tmpdir(), 'densestream-twin-knn-'));
  try {
    return sides(task, seed, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function sides({ sides: wanted, steps, batch, size, test, resample, init }: Task, seed: number, dir: string): TwinKnnLine {
  const cli = fileURLToPath(new URL('../pipelines/cli.js', import.meta.url));
  const run = join(dir, 'run');
  const node = (args: string[]) => runChecked(`densestream ${args[0]}`, process.execPath, [cli, ...args]);
  /** densestream's MoCo v2 run of the twin's task into `out`, `steps` long, with `extra` flags. */
  const train = (out: string, runSteps: number, extra: string[] = []) =>
    node([
      'train',
      '--data',
      'fashion-mnist',
      '--method',
      'mocov2',
      ...TWIN_TASK,
      '--size',
      `${size}`,
      '--batch',
      `${batch}`,
      '--steps',
      `${runSteps}`,
      '--knn-every',
      '0',
      '--seed',
      `${seed}`,
      // pinned, where `auto` would choose by timing: the two paths' pixels differ at crop edges
      '--augment',
      'backend',
      '--init',
      init,
      '--out',
      out,
      ...extra,
    ]);
  train(run, steps);
  const metrics = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number; seconds: number });
  const seconds = (metrics.at(-1) as { seconds: number }).seconds;
  const knn = (checkpoint: string, out: string) => {
    node([
      'eval',
      '--checkpoint',
      checkpoint,
      '--data',
      'fashion-mnist',
      '--protocol',
      'knn',
      '--train',
      '5000',
      '--test',
      `${test}`,
      '--size',
      `${size}`,
      '--out',
      out,
      '--quiet',
      ...(checkpoint === 'random' ? ['--seed', `${seed}`, '--init', init] : []),
    ]);
    const saved = JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8')) as Record<string, { knn: { knn20: number } }>;
    return (saved['fashion-mnist'] as { knn: { knn20: number } }).knn.knn20;
  };
  const ours = { knnInit: knn('random', join(dir, 'random')), knnFinal: knn(run, run) };
  type TwinLine = { steps: number; seconds: number; knnInit: number; knnFinal: number };
  const twin = (args: string[]) =>
    runForJson<TwinLine>('PyTorch twin', SYSTEM_PYTHON, [
      ...torchTwin(batch, size),
      '--schedule',
      '--knn-train',
      '5000',
      '--knn-test',
      `${test}`,
      '--seed',
      `${seed}`,
      '--resample',
      resample,
      ...args,
    ]);
  const side = (s: { steps: number; knnInit: number; knnFinal: number }): TwinKnnSide => ({
    steps: s.steps,
    images: s.steps * batch,
    knnInit: s.knnInit,
    knnFinal: s.knnFinal,
    gain: s.knnFinal - s.knnInit,
    gainStdErr: knnGainStdErr(s.knnInit, s.knnFinal, test),
  });
  // The twin's line counts the steps after its 5 warm-up steps; its images include them.
  const twinSide = (t: TwinLine) => ({ ...side({ ...t, steps: t.steps + 5 }), seconds: t.seconds });
  let initial: string | undefined;
  /**
   * densestream's initial weights, as a checkpoint: one step at rate 0 leaves them as drawn (the
   * weight decay is scaled by the rate); only batch-norm statistics move, and the twin does not load those.
   */
  const initialWeights = (): string => {
    if (initial === undefined) {
      initial = join(dir, 'init');
      train(initial, 1, ['--lr', '0', '--warmup', '0']);
    }
    return initial;
  };
  const runs: Record<TwinSide, () => TwinLine> = {
    torch: () => twin(['--seconds', `${seconds}`]),
    torchReferenceInit: () => twin(['--seconds', `${seconds}`, '--init', 'torchvision']),
    torchSameInit: () => twin(['--steps', `${steps - 5}`, '--init-from', initialWeights()]),
    torchSameInitSeconds: () => twin(['--seconds', `${seconds}`, '--init-from', initialWeights()]),
  };
  return {
    bench: 'twin-knn',
    seed,
    resample,
    init,
    seconds,
    test,
    densestream: side({ steps, ...ours }),
    ...Object.fromEntries(wanted.map((name) => [name, twinSide(runs[name]())])),
  };
}
