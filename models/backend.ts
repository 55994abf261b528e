/**
 * Compute backend selection.
 *
 * `auto` prefers native TensorFlow (CUDA, then CPU) when its package is installed, then WebGPU
 * on a hardware adapter, then wasm (XNNPACK + SIMD), then pure-JS cpu, and says why it passed
 * over each one it skipped. The native packages are optional peer dependencies: their install
 * script downloads libtensorflow, so they are installed by hand on hosts that can reach it.
 */
import * as tf from '@tensorflow/tfjs';
import { installFastConvGradients } from './conv-gradients.js';
import { installWasmKernels, type WasmKernelBuild } from './kernels/wasm-kernels.js';
import { relaxedSimdChoice, useRelaxedSimd, type RelaxedSimdChoice } from './relaxed-simd.js';
import { installFastMatMulGradient } from './matmul-gradient.js';
import { checkSameWasmThreads, defaultWasmThreads, registerThreadedWasm, wasmThreadCount } from './wasm-threads.js';
import { checkWasmThreads } from './backend-choice.js';
import { describeAdapter, loadWebGpu, type GpuAdapterSummary } from './webgpu.js';

import type { BackendChoice } from './backend-choice.js';
export { BACKEND_CHOICES, parseBackendChoice, type BackendChoice } from './backend-choice.js';
export type { WasmKernelBuild } from './kernels/wasm-kernels.js';
export { relaxedSimdChoice, relaxedSimdSupported, type RelaxedSimdChoice } from './relaxed-simd.js';

export interface BackendSelection {
  /** The tfjs backend name now active: 'tensorflow', 'webgpu', 'wasm' or 'cpu'. */
  backend: string;
  /** Which package provides it, e.g. '@tensorflow/tfjs-node-gpu'. */
  provider: string;
  /** One line per candidate tried: what was taken, and why the others were passed over. */
  reasons: string[];
  /** The GPU adapter, when the backend is webgpu. */
  adapter?: GpuAdapterSummary;
  /** The build of densestream's own kernels, when the backend is wasm and they are on. */
  kernelBuild?: WasmKernelBuild;
}

type Attempt = { provider: string; backend: string; load: () => Promise<GpuAdapterSummary | void> };

/** Loads a package that may be absent, without letting the type checker require it. */
async function importOptional(name: string): Promise<void> {
  await import(name);
}

export interface BackendOptions {
  /**
   * XNNPACK threads for wasm (default: the machine's cores, at most 8). 1 loads the
   * package's single-threaded SIMD build; more loads its threaded build.
   */
  threads?: number;
  /**
   * densestream's own wasm kernels (models/kernels/). Default: on, unless the environment sets
   * DENSESTREAM_WASM_KERNELS=0. Off keeps the engine's kernels and the forward-convolution
   * gradients alone: the baseline the benchmarks compare against, and a way to bisect.
   */
  kernels?: boolean;
  /**
   * The relaxed-SIMD build of densestream's kernels (fused multiply-adds in the products' inner
   * loops, faster where the CPU has them; docs/performance.md, "Measured: fused multiply-add"):
   * 'auto' takes it where the runtime compiles relaxed SIMD (Node 22 and later), true requires
   * it, false keeps the SIMD build, whose results are the same bits on every machine. Default:
   * DENSESTREAM_RELAXED_SIMD, 1 (required) or 0 (off), else 'auto'.
   */
  relaxedSimd?: RelaxedSimdChoice;
}

const NATIVE: Attempt[] = [
  { provider: '@tensorflow/tfjs-node-gpu', backend: 'tensorflow', load: () => importOptional('@tensorflow/tfjs-node-gpu') },
  { provider: '@tensorflow/tfjs-node', backend: 'tensorflow', load: () => importOptional('@tensorflow/tfjs-node') },
];
function wasmAttempt(threads: number): Attempt {
  return {
    provider: `@tensorflow/tfjs-backend-wasm (${threads === 1 ? 'simd' : `threaded-simd, ${threads} threads`})`,
    backend: 'wasm',
    load: async () => {
      await import('@tensorflow/tfjs-backend-wasm');
      checkSameWasmThreads(threads);
      if (threads > 1) registerThreadedWasm(threads);
      installFastConvGradients();
      installFastMatMulGradient();
    },
  };
}
function webGpuAttempt(hardwareOnly: boolean): Attempt {
  return {
    provider: '@tensorflow/tfjs-backend-webgpu (Dawn, npm webgpu)',
    backend: 'webgpu',
    load: () => loadWebGpu({ hardwareOnly }),
  };
}
const CPU: Attempt = { provider: '@tensorflow/tfjs-backend-cpu', backend: 'cpu', load: async () => {} };

function candidates(choice: BackendChoice, threads: number): Attempt[] {
  const wasm = wasmAttempt(threads);
  switch (choice) {
    case 'auto':
      return [...NATIVE, webGpuAttempt(true), wasm, CPU];
    case 'tensorflow':
      return NATIVE;
    case 'webgpu':
      return [webGpuAttempt(false)];
    case 'wasm':
      return [wasm];
    case 'cpu':
      return [CPU];
  }
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

/**
 * Activates the first backend of `choice` that loads and initialises.
 *
 * @example
 * const { backend, reasons } = await selectBackend('auto');
 * reasons.forEach((r) => console.error(r));
 */
export async function selectBackend(choice: BackendChoice = 'auto', options: BackendOptions = {}): Promise<BackendSelection> {
  const threads = checkWasmThreads(options.threads ?? defaultWasmThreads());
  const relaxed = relaxedSimdChoice(options.relaxedSimd);
  // Decided before any backend loads: a requirement this runtime cannot meet is refused at once,
  // not passed over to the next candidate. Only where densestream's kernels may run.
  const kernelsOn = options.kernels ?? process.env['DENSESTREAM_WASM_KERNELS'] !== '0';
  const mayRunKernels = kernelsOn && (choice === 'auto' || choice === 'wasm');
  const useRelaxed = mayRunKernels && useRelaxedSimd(relaxed, undefined, options.relaxedSimd === true ? 'relaxedSimd: true' : undefined);
  const reasons: string[] = [];
  for (const attempt of candidates(choice, threads)) {
    try {
      const adapter = (await attempt.load()) ?? undefined;
      const ok = await tf.setBackend(attempt.backend);
      if (!ok) throw new Error(`tf.setBackend('${attempt.backend}') returned false`);
      await tf.ready();
      let kernelBuild: WasmKernelBuild | undefined;
      if (attempt.backend === 'wasm' && kernelsOn) {
        kernelBuild = await installWasmKernels(wasmThreadCount(), useRelaxed ? 'relaxed-simd' : 'simd');
      }
      if (attempt.backend === 'wasm' && threads > 1 && wasmThreadCount() !== threads) {
        reasons.push(`backend: wasm asked for ${threads} threads and got ${wasmThreadCount()}`);
      }
      const on = adapter === undefined ? '' : ` on ${describeAdapter(adapter)}`;
      const build = kernelBuild === undefined ? '' : `, densestream's kernels ${kernelsNote(kernelBuild, relaxed)}`;
      reasons.push(`backend: took ${attempt.backend} (${attempt.provider})${on}${build}`);
      return {
        backend: attempt.backend,
        provider: attempt.provider,
        reasons,
        ...(adapter === undefined ? {} : { adapter }),
        ...(kernelBuild === undefined ? {} : { kernelBuild }),
      };
    } catch (err) {
      reasons.push(`backend: passed over ${attempt.provider}: ${firstLine(err)}`);
    }
  }
  throw new Error(`--backend ${choice}: no backend could be loaded\n${reasons.join('\n')}`);
}

/** How the took line names the kernels' build: why it is the SIMD one, where `auto` fell back to it. */
function kernelsNote(build: WasmKernelBuild, relaxed: RelaxedSimdChoice): string {
  if (build === 'relaxed-simd') return 'relaxed-simd';
  return relaxed === 'auto' ? 'simd (this runtime has no relaxed SIMD: Node 22 has)' : 'simd';
}

/** What a command's JSON line says of its engine: the backend and, on wasm, the build of densestream's kernels. */
export function backendFields(selection: BackendSelection): { backend: string; kernelBuild?: WasmKernelBuild } {
  return { backend: selection.backend, ...(selection.kernelBuild === undefined ? {} : { kernelBuild: selection.kernelBuild }) };
}

/** The lines a command prints about its backend: the one it took (and its threads); with `verbose`, why it passed over the others. */
export function backendLines(selection: BackendSelection, verbose: boolean): string[] {
  return selection.reasons.filter((line) => verbose || !line.startsWith('backend: passed over'));
}
