/**
 * `npm run bench -- twin-knn [--steps 150] [--batch 128] [--size 28] [--test 10000] [--seed 0 | A-B | A,B,…]
 * [--resample centres|libvips]`: MoCo v2 on Fashion-MNIST at equal wall time (issue #16).
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
 *   which separates learning from speed: its knnInit is densestream's random-init score.
 *
 * `--resample libvips` has the twin cut its views at the offset densestream's backend path takes
 * from libvips instead of at torchvision's half-pixel centres.
 *
 * Prints a line per seed, `{"bench":"twin-knn", "seed", "seconds", "densestream":{…}, "torch":{…},
 * "torchSameInit":{…}, "torchReferenceInit":{…}}`, each side with steps, images, knnInit, knnFinal,
 * gain and its standard error. With more than one seed (`--seed 0-9`) a last line sums them up
 * (`summariseTwinKnn`): each side's mean scores, and densestream's gain and final score against
 * each twin side's, paired seed by seed. A gain from one draw depends on where that draw starts
 * (a draw that scores lower at init has more to gain), so a comparison of gains needs many seeds.
 * If a seed fails, the seeds done before it are still summed up (two or more), then the error.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { knnGainStdErr } from '../train/knn-monitor.js';
import { positiveInt } from '../pipelines/options.js';
import { printJson, pythonHas, runForJson, SYSTEM_PYTHON } from './report.js';
import { estimate, pairedGap, type Estimate, type Verdict } from './results-stats.js';
import { TWIN_TASK, torchTwin } from './twin.js';

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

export const TWIN_SIDES = ['torch', 'torchReferenceInit', 'torchSameInit'] as const;
export type TwinSide = (typeof TWIN_SIDES)[number];

export type TwinKnnLine = {
  bench: 'twin-knn';
  seed: number;
  resample: string;
  seconds: number;
  test: number;
  densestream: TwinKnnSide;
} & Record<TwinSide, TwinKnnSide>;

type Paired = Estimate & { verdict: Verdict };

/** The last line of a run over several seeds. */
export type TwinKnnSummary = {
  bench: 'twin-knn';
  seeds: number[];
  steps: number;
  test: number;
  resample: string;
  /** Each side's scores over the seeds (mean, spread, standard error of the mean), its mean images and, on the twin's sides, training seconds. */
  sides: Record<'densestream' | TwinSide, { knnInit: Estimate; knnFinal: Estimate; gain: Estimate; images: number; seconds: number }>;
  /**
   * densestream minus each twin side, seed by seed: its gain, and its final score. Only
   * `torchSameInit` shares a seed's initial weights with densestream; for the other two the
   * pairing by seed number is arbitrary (PyTorch draws its own weights, order and views), which
   * keeps the mean unbiased and costs degrees of freedom.
   */
  gainOver: Record<TwinSide, Paired>;
  finalOver: Record<TwinSide, Paired>;
};

/**
 * Sums up `lines`, one per seed. The standard errors are the seeds' spread only: every seed is
 * scored on the same test images, so the split's own sampling error is not averaged away and is
 * not in them (it is in each line's `gainStdErr`).
 */
export function summariseTwinKnn(lines: readonly TwinKnnLine[]): TwinKnnSummary {
  if (lines.length === 0) throw new Error('summariseTwinKnn: no seeds');
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const of = (side: 'densestream' | TwinSide) => ({
    knnInit: estimate(lines.map((l) => l[side].knnInit)),
    knnFinal: estimate(lines.map((l) => l[side].knnFinal)),
    gain: estimate(lines.map((l) => l[side].gain)),
    images: Math.round(mean(lines.map((l) => l[side].images))),
    seconds: Number(mean(lines.map((l) => l[side].seconds ?? l.seconds)).toFixed(2)),
  });
  const paired = (key: 'gain' | 'knnFinal') =>
    Object.fromEntries(
      TWIN_SIDES.map((side) => [
        side,
        pairedGap(
          lines.map((l) => l.densestream[key]),
          lines.map((l) => l[side][key]),
        ),
      ]),
    ) as Record<TwinSide, Paired>;
  return {
    bench: 'twin-knn',
    seeds: lines.map((l) => l.seed),
    steps: (lines[0] as TwinKnnLine).densestream.steps,
    test: (lines[0] as TwinKnnLine).test,
    resample: (lines[0] as TwinKnnLine).resample,
    sides: {
      densestream: of('densestream'),
      torch: of('torch'),
      torchReferenceInit: of('torchReferenceInit'),
      torchSameInit: of('torchSameInit'),
    },
    gainOver: paired('gain'),
    finalOver: paired('knnFinal'),
  };
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
  steps: number;
  batch: number;
  size: number;
  test: number;
  resample: string;
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
    },
  });
  if (!['centres', 'libvips'].includes(values.resample)) throw new Error(`--resample: expected centres|libvips, got "${values.resample}"`);
  const seeds = parseSeeds(values.seed);
  const task: Task = {
    steps: positiveInt(values.steps, '--steps'),
    batch: positiveInt(values.batch, '--batch'),
    size: positiveInt(values.size, '--size'),
    test: positiveInt(values.test, '--test'),
    resample: values.resample,
  };
  if (!pythonHas('torch')) throw new Error('twin-knn: needs PyTorch for its other side (apt-get install python3-torch)');
  const lines: TwinKnnLine[] = [];
  try {
    for (const seed of seeds) {
      const line = oneSeed(task, seed);
      printJson(line);
      lines.push(line);
    }
  } finally {
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

function sides({ steps, batch, size, test, resample }: Task, seed: number, dir: string): TwinKnnLine {
  const cli = fileURLToPath(new URL('../pipelines/cli.js', import.meta.url));
  const run = join(dir, 'run');
  const node = (args: string[]) => {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`densestream ${args[0]} failed:\n${r.stderr}`);
    return r.stdout;
  };
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
      ...(checkpoint === 'random' ? ['--seed', `${seed}`] : []),
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
  const torch = twin(['--seconds', `${seconds}`]);
  const referenceInit = twin(['--seconds', `${seconds}`, '--init', 'torchvision']);
  // densestream's initial weights, as a checkpoint: one step at rate 0 leaves them as drawn (the
  // weight decay is scaled by the rate); only batch-norm statistics move, and the twin does not load those.
  const init = join(dir, 'init');
  train(init, 1, ['--lr', '0', '--warmup', '0']);
  const sameInit = twin(['--steps', `${steps - 5}`, '--init-from', init]);
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
  return {
    bench: 'twin-knn',
    seed,
    resample,
    seconds,
    test,
    densestream: side({ steps, ...ours }),
    torch: twinSide(torch),
    torchSameInit: twinSide(sameInit),
    torchReferenceInit: twinSide(referenceInit),
  };
}
