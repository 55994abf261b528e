/**
 * Where densestream's wasm kernels stand: the installation they run on (the backend, its memory,
 * the thread pool) and the mechanism that puts a kernel of ours in front of one of tfjs's, for
 * kernels and for gradients, falling back to tfjs's whenever ours are not installed.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { KernelPool } from './pool.js';
import type { WasmMemory } from '../../core/webassembly.js';

/**
 * Which build of kernels.c runs: `relaxed-simd` uses WebAssembly's `f32x4.relaxed_madd` in the
 * products' inner loops (one fused multiply-add where the CPU has it, so a sum may differ from
 * `simd`'s in its last bits, and between CPUs); `simd` multiplies, then adds: the same bits on
 * every machine.
 */
export type WasmKernelBuild = 'relaxed-simd' | 'simd';

export interface Installed {
  backend: BackendWasm;
  pool: KernelPool;
  memory: WasmMemory;
  /** 16 int32 of the backend's heap that carry a call's geometry and its work-item counter. */
  geometry: number;
  build: WasmKernelBuild;
}

/** The convolution geometry a filter-gradient call needs, NHWC. */
export interface FilterGradientAttrs {
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  padTop: number;
  padLeft: number;
  filterHeight: number;
  filterWidth: number;
}

let installed: Installed | undefined;

/** The kernels' current installation (installWasmKernels sets it). */
export function currentInstall(): Installed | undefined {
  return installed;
}

export function setInstall(k: Installed): void {
  installed = k;
}

/** Threads the kernels run on for the active wasm backend; 0 when not installed there. */
export function wasmKernelThreads(): number {
  return installed !== undefined && tf.getBackend() === 'wasm' && tf.backend() === installed.backend ? installed.pool.parts : 0;
}

/**
 * Runs `work` with the kernels' threads sleeping as soon as they find no work, then restores
 * their spin: for a measurement that counts every thread's CPU time (`--augment auto`), where the
 * watch after each call would be charged to the work measured.
 */
export async function withKernelsAsleep<T>(work: () => Promise<T>): Promise<T> {
  const pool = wasmKernelThreads() > 1 ? installed?.pool : undefined;
  const spin = pool?.spinUs ?? 0;
  if (pool) pool.spinUs = 0;
  try {
    return await work();
  } finally {
    if (pool) pool.spinUs = spin;
  }
}

/** Microseconds the installed kernels' threads watch for work before sleeping; null with no threads to watch. */
export function wasmKernelSpinUs(): number | null {
  return wasmKernelThreads() > 1 ? (installed?.pool.spinUs ?? null) : null;
}

/** The build of the kernels installed on the active wasm backend; undefined when none is. */
export function wasmKernelBuild(): WasmKernelBuild | undefined {
  return wasmKernelThreads() > 0 ? installed?.build : undefined;
}

/** Below this many output values a call stays on one thread: waking the others costs more. */
export const PARALLEL_MIN = 32 * 1024;

/** The kernels when they are installed on `backend`, else undefined (the engine's kernels run). */
export function installedOn(backend: unknown): Installed | undefined {
  return installed !== undefined && installed.backend === backend ? installed : undefined;
}

export function active(backend: unknown): Installed {
  const k = installedOn(backend);
  if (k === undefined) throw new Error('wasm kernels: not installed on this wasm backend (selectBackend installs them)');
  return k;
}

/** Float32 or int32: the element types the copying and transposing kernels move as 4-byte words. */
export function fourByte(t: tf.TensorInfo): boolean {
  return t.dtype === 'float32' || t.dtype === 'int32';
}

/** Writes a call's geometry (at most 16 int32, a work-item counter included) where the kernels read it; returns its address. */
export function writeGeometry(k: Installed, words: readonly number[]): number {
  if (words.length > 16) throw new Error(`wasm kernels: a geometry holds 16 words, not ${words.length}`);
  new Int32Array(k.memory.buffer, k.geometry, words.length).set(words);
  return k.geometry;
}

const bitsFloat = new Float32Array(1);
const bitsWord = new Int32Array(bitsFloat.buffer);

/** A float32 as the int32 word with the same bits: the pool passes int32 arguments. */
export function floatBits(value: number): number {
  bitsFloat[0] = value; // one pair of views for every call: a call made two arrays, 0.2 % of a run's main thread
  return bitsWord[0]!;
}

export function offset(k: Installed, t: tf.TensorInfo): number {
  return k.backend.dataIdMap.get(t.dataId)!.memoryOffset;
}

export type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * Replaces wasm's `kernelName` with `ours`, which returns undefined for the cases it leaves to
 * the kernel it replaced (and for every call while the kernels are not installed).
 */
export function override(kernelName: string, ours: (args: KernelArgs, k: Installed) => tf.TensorInfo | tf.TensorInfo[] | undefined): void {
  const original = tf.getKernel(kernelName, 'wasm');
  if (original === undefined) throw new Error(`wasm kernels: the wasm backend has no ${kernelName} to take over`);
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const k = installedOn(args.backend);
      return (k === undefined ? undefined : ours(args, k)) ?? original.kernelFunc(args);
    },
  });
}

/**
 * Replaces tfjs's gradient of `kernelName` with `ours` (given dy and the first saved tensor),
 * which returns undefined for the cases it leaves to tfjs's gradient; tfjs's runs too while
 * the kernels are not installed and for anything but float32.
 */
export function overrideGradient(
  kernelName: string,
  ours: (dy: tf.Tensor, x: tf.Tensor, attrs: tf.NamedAttrMap) => Record<string, () => tf.Tensor> | undefined,
): void {
  const original = tf.getGradient(kernelName);
  if (original === undefined) throw new Error(`wasm kernels: tfjs has no ${kernelName} gradient to wrap`);
  tf.registerGradient({
    ...original,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const g = dy as tf.Tensor;
      const mine = wasmKernelThreads() > 0 && x.dtype === 'float32' && g.dtype === 'float32' ? ours(g, x, attrs) : undefined;
      return mine ?? original.gradFunc(dy, saved, attrs);
    },
  });
}

/** A kernel result that shares `x`'s data (tensors are immutable): Identity, a Cast to x's own dtype. */
export function shareData(k: Installed, x: tf.TensorInfo): tf.TensorInfo {
  k.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}
