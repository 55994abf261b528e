/**
 * `npm run bench -- train-step`: milliseconds per SGD step of the reference net
 * (bench/reference-net.ts) on wasm with one thread and with every core, and of the same net
 * in single-threaded PyTorch when Debian's python3-torch is importable, all in one run; on wasm
 * also without densestream's own kernels (models/kernels/) and with them but without their Winograd
 * convolutions, to show what each buys. `--baseline SETTING` times the main configuration once
 * more on another `--kernels` setting (bench/report.ts), such as `simd+xnnpack`, in the same run.
 * Each configuration runs in its own process: tfjs holds one backend per process.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { parseBackendChoice, selectBackend } from '../models/backend.js';
import type { GpuAdapterSummary } from '../models/webgpu.js';
import { defaultWasmThreads } from '../models/wasm-threads.js';
import { createReferenceNet, createResNetClassifier } from './reference-net.js';
import { positiveInt } from '../pipelines/options.js';
import {
  benchFile,
  kernelsEnv,
  type KernelsChoice,
  median,
  parseKernels,
  printJson,
  pythonHas,
  runForJson,
  SYSTEM_PYTHON,
} from './report.js';

interface StepOptions {
  batch: number;
  size: number;
  steps: number;
  warmup: number;
}

/** The nets timed by default: the reference CNN and the trainer's slim ResNet (reported last: reference). */
const NETS = ['resnet', 'reference'] as const;
/** Also on request (`--net resnet18`): ResNet-18, for a GPU (a step takes tens of seconds on wasm). */
const ALL_NETS = [...NETS, 'resnet18'] as const;
type Net = (typeof ALL_NETS)[number];
function parseNet(value: string): Net {
  if ((ALL_NETS as readonly string[]).includes(value)) return value as Net;
  throw new Error(`--net: expected one of ${ALL_NETS.join('|')}, got "${value}"`);
}

function parse(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      batch: { type: 'string', default: '32' },
      size: { type: 'string', default: '64' },
      steps: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      backend: { type: 'string', default: 'wasm' },
      threads: { type: 'string' },
      single: { type: 'boolean', default: false },
      net: { type: 'string' },
      baseline: { type: 'string' },
    },
  });
  const baselines = values.baseline === undefined ? [] : parseKernels(values.baseline);
  if (baselines.length > 1) throw new Error(`--baseline: expected one --kernels setting, got "${values.baseline}"`);
  const nets = values.net === undefined ? NETS : [parseNet(values.net)];
  const opts: StepOptions = {
    batch: positiveInt(values.batch, '--batch'),
    size: positiveInt(values.size, '--size'),
    steps: positiveInt(values.steps, '--steps'),
    warmup: positiveInt(values.warmup, '--warmup'),
  };
  const threads = values.threads === undefined ? defaultWasmThreads() : positiveInt(values.threads, '--threads');
  return { opts, threads, backend: parseBackendChoice(values.backend), single: values.single, nets, baseline: baselines[0] };
}

/** Times the reference net in this process; prints one `train-step-config` line. */
async function measure(backendChoice: ReturnType<typeof parseBackendChoice>, threads: number, o: StepOptions, which: Net) {
  const { backend, adapter } = await selectBackend(backendChoice, { threads });
  const net = which === 'reference' ? createReferenceNet(1) : createResNetClassifier(1, 10, which === 'resnet18' ? 'resnet18' : 'slim');
  const images = tf.randomUniform([o.batch, o.size, o.size, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const labels = tf.tensor1d(
    Array.from({ length: o.batch }, (_, i) => i % 10),
    'int32',
  );
  const times: number[] = [];
  for (let i = 0; i < o.warmup + o.steps; i++) {
    const t0 = performance.now();
    await net.step(images, labels, 0.05);
    if (i >= o.warmup) times.push(performance.now() - t0);
  }
  net.dispose();
  printJson({
    bench: 'train-step-config',
    net: which,
    backend,
    adapter: adapter ?? null,
    threads: backend === 'wasm' ? threads : null,
    ...o,
    msPerStep: median(times),
  });
}

/** Runs one configuration in a child process and returns its JSON line. */
function child(args: string[], kernels: KernelsChoice = 'on'): { backend: string; adapter: GpuAdapterSummary | null; msPerStep: number } {
  return runForJson(
    `train-step ${args.join(' ')}`,
    process.execPath,
    [benchFile('run.js'), 'train-step', '--single', ...args],
    kernelsEnv(kernels),
  );
}

/** The PyTorch side, or null when python3-torch is not installed. */
function torchMsPerStep(o: StepOptions, which: Net): number | null {
  if (!pythonHas('torch')) return null;
  return runForJson<{ torchMsPerStep: number }>('torch reference', SYSTEM_PYTHON, [
    benchFile('torch_reference.py', true),
    '--batch',
    `${o.batch}`,
    '--size',
    `${o.size}`,
    '--steps',
    `${o.steps}`,
    '--warmup',
    `${o.warmup}`,
    '--threads',
    '1',
    '--net',
    which,
  ]).torchMsPerStep;
}

export async function trainStepBench(argv: string[]): Promise<void> {
  const { opts, threads, backend, single, nets, baseline } = parse(argv);
  if (single) return measure(backend, threads, opts, nets[0] as Net);
  for (const net of nets) {
    const common = [
      '--batch',
      `${opts.batch}`,
      '--size',
      `${opts.size}`,
      '--steps',
      `${opts.steps}`,
      '--warmup',
      `${opts.warmup}`,
      '--net',
      net,
    ];
    const oneThread = backend === 'wasm' && threads > 1 ? child([...common, '--backend', 'wasm', '--threads', '1']) : null;
    const main = child([...common, '--backend', backend, '--threads', `${threads}`]);
    // The same configuration on the engine's kernels alone: what densestream's kernels buy.
    const engineOnly = main.backend === 'wasm' ? child([...common, '--backend', backend, '--threads', `${threads}`], 'off') : null;
    // Our kernels without the Winograd convolutions: what Winograd buys on top of the rest.
    const direct = main.backend === 'wasm' ? child([...common, '--backend', backend, '--threads', `${threads}`], 'direct') : null;
    const before =
      baseline !== undefined && main.backend === 'wasm'
        ? child([...common, '--backend', backend, '--threads', `${threads}`], baseline)
        : null;
    const torch = torchMsPerStep(opts, net);
    printJson({
      bench: 'train-step',
      net,
      backend: main.backend,
      adapter: main.adapter,
      threads: main.backend === 'wasm' ? threads : null,
      batch: opts.batch,
      size: opts.size,
      msPerStep: main.msPerStep,
      msPerStepOneThread: oneThread?.msPerStep ?? null,
      msPerStepWithoutKernels: engineOnly?.msPerStep ?? null,
      kernelSpeedup: engineOnly === null ? null : engineOnly.msPerStep / main.msPerStep,
      msPerStepDirect: direct?.msPerStep ?? null,
      winogradSpeedup: direct === null ? null : direct.msPerStep / main.msPerStep,
      ...(before === null ? {} : { baseline, msPerStepBaseline: before.msPerStep, baselineSpeedup: before.msPerStep / main.msPerStep }),
      torchMsPerStep: torch,
      ratio: torch === null ? null : main.msPerStep / torch,
    });
  }
}
