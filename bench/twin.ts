/**
 * `npm run bench -- twin [--steps 20] [--batch 128] [--size 28] [--augment auto|cpu|backend] [--kernels on|off|both]`:
 * MoCo v2 on Fashion-MNIST, densestream against its PyTorch twin (`torch_moco_twin.py`: the same
 * slim ResNet, heads, queue, optimiser and augmentation ranges, views cut on the batch tensor,
 * 2 threads), in the same run, one after the other, each in its own process. Prints the two
 * sides' lines, then `{"bench":"twin","imagesPerSec","torchImagesPerSec","ratio","dataWaitFraction"}`:
 * ratio = densestream / PyTorch images per second, both over the steps after the first 5.
 */
import { parseArgs } from 'node:util';
import { positiveInt } from '../pipelines/options.js';
import { benchFile, kernelsEnv, parseKernels, printJson, pythonHas, runForJson, SYSTEM_PYTHON } from './report.js';

export async function twinBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: 'string', default: '20' }, batch: { type: 'string', default: '128' }, size: { type: 'string', default: '28' },
      augment: { type: 'string', default: 'auto' }, kernels: { type: 'string', default: 'on' },
    },
  });
  const steps = positiveInt(values.steps, '--steps');
  const batch = positiveInt(values.batch, '--batch');
  const size = positiveInt(values.size, '--size');
  if (!pythonHas('torch')) throw new Error('twin: needs PyTorch for its other side (apt-get install python3-torch)');
  // densestream's rates skip its first 5 steps; the twin's warm-up is the same 5.
  const sides = parseKernels(values.kernels).map((k) => runForJson<{ imagesPerSec: number; dataWaitFraction: number; augment: string; kernels: boolean }>(
    'densestream side', process.execPath, [
      benchFile('run.js'), 'train', '--single', '--data', 'fashion-mnist', '--method', 'mocov2', '--encoder', 'slim',
      '--steps', `${steps + 5}`, '--batch', `${batch}`, '--size', `${size}`, '--augment', values.augment,
    ], kernelsEnv(k)));
  const torch = runForJson<{ torchImagesPerSec: number }>('PyTorch twin', SYSTEM_PYTHON, [
    benchFile('torch_moco_twin.py', true), '--steps', `${steps}`, '--warmup', '5', '--batch', `${batch}`, '--size', `${size}`, '--threads', '2',
  ]);
  for (const ours of sides) {
    printJson({
      bench: 'twin', augment: ours.augment, kernels: ours.kernels, imagesPerSec: ours.imagesPerSec, torchImagesPerSec: torch.torchImagesPerSec,
      ratio: ours.imagesPerSec / torch.torchImagesPerSec, dataWaitFraction: ours.dataWaitFraction,
    });
  }
}
