/**
 * `npm run bench -- twin [--steps 20] [--batch 128] [--size 28] [--augment auto|cpu|backend] [--kernels on|off|direct|xnnpack|simd|relaxed-simd|both|all] [--rounds 1]`:
 * MoCo v2 on Fashion-MNIST, densestream against its PyTorch twin (`torch_moco_twin.py`: the same
 * slim ResNet, heads, queue, optimiser and augmentation ranges, views cut on the batch tensor,
 * 2 threads), in the same run, one after the other, each in its own process. Prints the two
 * sides' lines, then `{"bench":"twin","imagesPerSec","torchImagesPerSec","ratio","dataWaitFraction"}`:
 * ratio = densestream / PyTorch images per second, both over the steps after the first 5.
 * `--rounds N` repeats the pair N times, PyTorch first in every other round, a line per round
 * (with `round`), then one with `rounds` and the medians: on a shared 2-core machine PyTorch's
 * rate alone moved by 25–45 % between runs, so one pair's ratio says little.
 */
import { parseArgs } from 'node:util';
import type { WasmKernelBuild } from '../models/backend.js';
import { positiveInt } from '../pipelines/options.js';
import { benchFile, kernelsEnv, median, parseKernels, printJson, pythonHas, runForJson, SYSTEM_PYTHON } from './report.js';

/** The twin's task where train's defaults differ from it (the default recipe's): MoCo v2's 4 096 keys and hue range. */
export const TWIN_TASK = ['--queue', '4096', '--hue', '0.1'];

/** The PyTorch twin's command line for `batch` images of `size` px: 2 threads, and 5 warm-up steps, as densestream's rates skip. */
export function torchTwin(batch: number, size: number): string[] {
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
  type Side = {
    imagesPerSec: number;
    dataWaitFraction: number;
    augment: string;
    kernels: boolean;
    kernelBuild: WasmKernelBuild | null;
    winograd: boolean;
    directConv: boolean;
    /** Microseconds the kernels' threads watch for work before sleeping (null: no threads). */
    poolSpinUs: number | null;
    /** The `--kernels` setting it ran with. */
    setting: string;
  };
  // densestream's rates skip its first 5 steps; the twin's warm-up is the same 5.
  const ours = () =>
    parseKernels(values.kernels).map((k) => ({
      setting: k,
      ...runForJson<Omit<Side, 'setting'>>(
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
    }));
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
      setting: side.setting,
      augment: side.augment,
      kernels: side.kernels,
      kernelBuild: side.kernelBuild,
      winograd: side.winograd,
      directConv: side.directConv,
      poolSpinUs: side.poolSpinUs,
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
      setting: first.setting,
      augment: first.augment,
      kernels: first.kernels,
      kernelBuild: first.kernelBuild,
      winograd: first.winograd,
      directConv: first.directConv,
      poolSpinUs: first.poolSpinUs,
      imagesPerSec: of('imagesPerSec'),
      torchImagesPerSec: of('torchImagesPerSec'),
      ratio: of('ratio'),
      ratios: lines.map((row) => row[k]!.ratio),
      dataWaitFraction: of('dataWaitFraction'),
    });
  });
}
