/**
 * `npm run bench -- twin [--steps 20] [--batch 128] [--size 28] [--augment auto|cpu|backend] [--kernels on|off|direct|both|all] [--rounds 1]`:
 * MoCo v2 on Fashion-MNIST, densestream against its PyTorch twin (`torch_moco_twin.py`: the same
 * slim ResNet, heads, queue, optimiser and augmentation ranges, views cut on the batch tensor,
 * 2 threads), in the same run, one after the other, each in its own process. Prints the two
 * sides' lines, then `{"bench":"twin","imagesPerSec","torchImagesPerSec","ratio","dataWaitFraction"}`:
 * ratio = densestream / PyTorch images per second, both over the steps after the first 5.
 * `--rounds N` repeats the pair N times, PyTorch first in every other round, a line per round
 * (with `round`), then one with `rounds` and the medians: on a shared 2-core machine PyTorch's
 * rate alone moved by 25–45 % between runs, so one pair's ratio says little.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { knnGainStdErr } from '../train/knn-monitor.js';
import { positiveInt } from '../pipelines/options.js';
import { benchFile, kernelsEnv, median, parseKernels, printJson, pythonHas, runForJson, SYSTEM_PYTHON } from './report.js';

/** The twin's task where train's defaults differ from it (the default recipe's): MoCo v2's 4 096 keys and hue range. */
const TWIN_TASK = ['--queue', '4096', '--hue', '0.1'];

/** The PyTorch twin's command line for `batch` images of `size` px: 2 threads, and 5 warm-up steps, as densestream's rates skip. */
function torchTwin(batch: number, size: number): string[] {
  return [benchFile('torch_moco_twin.py', true), '--warmup', '5', '--batch', `${batch}`, '--size', `${size}`, '--threads', '2'];
}

export async function twinBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: 'string', default: '20' },
      batch: { type: 'string', default: '128' },
      size: { type: 'string', default: '28' },
      augment: { type: 'string', default: 'auto' },
      kernels: { type: 'string', default: 'on' },
      rounds: { type: 'string', default: '1' },
    },
  });
  const steps = positiveInt(values.steps, '--steps');
  const rounds = positiveInt(values.rounds, '--rounds');
  const batch = positiveInt(values.batch, '--batch');
  const size = positiveInt(values.size, '--size');
  if (!pythonHas('torch')) throw new Error('twin: needs PyTorch for its other side (apt-get install python3-torch)');
  /** What the twin line keeps of a densestream side's `bench train` line. */
  type Side = { imagesPerSec: number; dataWaitFraction: number; augment: string; kernels: boolean; winograd: boolean };
  // densestream's rates skip its first 5 steps; the twin's warm-up is the same 5.
  const ours = () =>
    parseKernels(values.kernels).map((k) =>
      runForJson<Side>(
        'densestream side',
        process.execPath,
        [
          benchFile('run.js'),
          'train',
          '--single',
          '--data',
          'fashion-mnist',
          '--method',
          'mocov2',
          ...TWIN_TASK,
          '--encoder',
          'slim',
          '--steps',
          `${steps + 5}`,
          '--batch',
          `${batch}`,
          '--size',
          `${size}`,
          '--augment',
          values.augment,
        ],
        kernelsEnv(k),
      ),
    );
  const theirs = () =>
    runForJson<{ torchImagesPerSec: number }>('PyTorch twin', SYSTEM_PYTHON, [...torchTwin(batch, size), '--steps', `${steps}`])
      .torchImagesPerSec;
  type Line = Side & { torchImagesPerSec: number; ratio: number };
  const lines: Line[][] = [];
  for (let round = 0; round < rounds; round++) {
    // alternate which side goes first, so a drift in the machine's speed favours neither
    const torchFirst = round % 2 === 1;
    const torchRate = torchFirst ? theirs() : undefined;
    const sides = ours();
    const torch = torchRate ?? theirs();
    const row = sides.map((side) => ({
      augment: side.augment,
      kernels: side.kernels,
      winograd: side.winograd,
      imagesPerSec: side.imagesPerSec,
      torchImagesPerSec: torch,
      ratio: side.imagesPerSec / torch,
      dataWaitFraction: side.dataWaitFraction,
    }));
    lines.push(row);
    for (const line of row) printJson({ bench: 'twin', ...(rounds > 1 ? { round: round + 1 } : {}), ...line });
  }
  if (rounds === 1) return;
  lines[0]!.forEach((first, k) => {
    const of = (key: 'imagesPerSec' | 'torchImagesPerSec' | 'ratio' | 'dataWaitFraction') => median(lines.map((row) => row[k]![key]));
    printJson({
      bench: 'twin',
      rounds,
      augment: first.augment,
      kernels: first.kernels,
      winograd: first.winograd,
      imagesPerSec: of('imagesPerSec'),
      torchImagesPerSec: of('torchImagesPerSec'),
      ratio: of('ratio'),
      ratios: lines.map((row) => row[k]!.ratio),
      dataWaitFraction: of('dataWaitFraction'),
    });
  });
}

/**
 * `npm run bench -- twin-knn [--steps 150] [--batch 128] [--size 28] [--test 10000] [--seed 0]
 * [--resample centres|libvips]`: MoCo v2 on
 * Fashion-MNIST at equal wall time (issue #16). densestream trains `--steps` steps; the PyTorch
 * twin (`torch_moco_twin.py --schedule`: densestream's warm-up + cosine and decoupled weight
 * decay) then trains for the same number of seconds. Both are scored by the same kNN protocol,
 * each against its own random init: `densestream eval --protocol knn --train 5000 --test N` on
 * the checkpoint and on `--checkpoint random`, and the twin's own implementation of that
 * protocol. A third side separates learning from speed: the twin trains `--steps` steps (equal
 * images) from densestream's own initial weights (`torchSameInit`), so its knnInit is densestream's
 * random-init score and its knnFinal compares with densestream's directly. A fourth side trains the
 * twin for the same seconds from torchvision's ResNet initialisation (`torchReferenceInit`: the
 * convolutions He-normal on fan_out, as the MoCo and DenseCL code draws them), where `torch` starts
 * from PyTorch's layer defaults, which those implementations replace. `--resample libvips` has
 * the twin cut its views at the offset densestream's backend path takes from libvips instead of at
 * torchvision's half-pixel centres, to tell whether that difference shows in learning.
 * Prints `{"bench":"twin-knn", "seconds", "densestream":{…}, "torch":{…}, "torchSameInit":{…}, "torchReferenceInit":{…}}`,
 * each side with steps, images, knnInit, knnFinal, gain and its standard error.
 */
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
  const seed = Number(values.seed);
  if (!['centres', 'libvips'].includes(values.resample)) throw new Error(`--resample: expected centres|libvips, got "${values.resample}"`);
  if (values.seed.trim() === '' || !Number.isInteger(seed) || seed < 0)
    throw new Error(`--seed: expected an integer ≥ 0, got "${values.seed}"`);
  const [steps, batch, size, test] = [
    positiveInt(values.steps, '--steps'),
    positiveInt(values.batch, '--batch'),
    positiveInt(values.size, '--size'),
    positiveInt(values.test, '--test'),
  ];
  if (!pythonHas('torch')) throw new Error('twin-knn: needs PyTorch for its other side (apt-get install python3-torch)');
  const cli = fileURLToPath(new URL('../pipelines/cli.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'densestream-twin-knn-'));
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
      values.resample,
      ...args,
    ]);
  const torch = twin(['--seconds', `${seconds}`]);
  const referenceInit = twin(['--seconds', `${seconds}`, '--init', 'torchvision']);
  // densestream's initial weights, as a checkpoint: one step at rate 0 leaves them as drawn (the
  // weight decay is scaled by the rate); only batch-norm statistics move, and the twin does not load those.
  const init = join(dir, 'init');
  train(init, 1, ['--lr', '0', '--warmup', '0']);
  const sameInit = twin(['--steps', `${steps - 5}`, '--init-from', init]);
  const side = (s: { steps: number; knnInit: number; knnFinal: number }) => ({
    steps: s.steps,
    images: s.steps * batch,
    knnInit: s.knnInit,
    knnFinal: s.knnFinal,
    gain: s.knnFinal - s.knnInit,
    gainStdErr: knnGainStdErr(s.knnInit, s.knnFinal, test),
  });
  // The twin's line counts the steps after its 5 warm-up steps; its images include them.
  const twinSide = (t: TwinLine) => ({ ...side({ ...t, steps: t.steps + 5 }), seconds: t.seconds });
  printJson({
    bench: 'twin-knn',
    seed,
    resample: values.resample,
    seconds,
    test,
    densestream: side({ steps, ...ours }),
    torch: twinSide(torch),
    torchSameInit: twinSide(sameInit),
    torchReferenceInit: twinSide(referenceInit),
  });
  rmSync(dir, { recursive: true, force: true });
}
