/**
 * The WebGPU backend under Node: Dawn (npm `webgpu`, prebuilt in its registry tarball, so nothing
 * downloads at install) drives the machine's Vulkan, Metal or D3D12 driver, and
 * `@tensorflow/tfjs-backend-webgpu` runs tfjs's kernels on it. No CUDA toolkit, no libtensorflow.
 *
 * In a browser `navigator.gpu` exists already and is used as it is.
 */
import * as tf from '@tensorflow/tfjs';
import { readdirSync } from 'node:fs';

/** What `densestream backend` and the benchmarks report about the adapter WebGPU runs on. */
export interface GpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A fallback adapter: a software rasteriser such as Mesa's lavapipe, or SwiftShader. */
  fallback: boolean;
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
  };
}

/** The slice of the WebGPU API used here (the full typings would pull in the DOM's). */
interface AdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
  limits: Record<string, number>;
}
interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'high-performance' | 'low-power' }): Promise<AdapterLike | null>;
}

function navigatorGpu(): GpuLike | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator;
  return nav?.gpu;
}

/**
 * Puts Dawn behind `navigator.gpu` when there is none. This must happen before
 * tfjs-backend-webgpu is first imported: it registers itself only if `navigator.gpu` exists then.
 */
async function provideNavigatorGpu(): Promise<GpuLike> {
  const existing = navigatorGpu();
  if (existing !== undefined) return existing;
  const dawn = (await import('webgpu')) as unknown as { create(options: string[]): GpuLike; globals: object };
  // GPUBufferUsage, GPUMapMode and the other constants the backend reads as globals.
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  const nav = (globalThis as { navigator?: object }).navigator;
  // Node 21+ has a `navigator` of its own (without gpu); Node 20 has none.
  if (nav !== undefined) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  return gpu;
}

function summarize(adapter: AdapterLike): GpuAdapterSummary {
  const info = adapter.info ?? {};
  const limit = (name: string): number => Number(adapter.limits[name] ?? 0);
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    fallback: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false),
    limits: {
      maxBufferSize: limit('maxBufferSize'),
      maxStorageBufferBindingSize: limit('maxStorageBufferBindingSize'),
      maxComputeWorkgroupStorageSize: limit('maxComputeWorkgroupStorageSize'),
      maxComputeInvocationsPerWorkgroup: limit('maxComputeInvocationsPerWorkgroup'),
    },
  };
}

/** One line naming an adapter, for logs. */
export function describeAdapter(a: GpuAdapterSummary): string {
  const name = a.description || [a.vendor, a.architecture, a.device].filter((s) => s !== '').join(' ') || 'unnamed adapter';
  return a.fallback ? `${name}, a software adapter` : name;
}

/**
 * On Linux a GPU driver exposes a device node; without one Dawn can only find a software
 * adapter. Checking first spares `--backend auto` loading Dawn and a Vulkan driver (about 0.9 s
 * here) on every CPU-only start. Elsewhere, true: there Dawn is asked.
 */
function gpuDevicePresent(): boolean {
  if (process.platform !== 'linux') return true;
  const has = (dir: string, prefix: string): boolean => {
    try {
      return readdirSync(dir).some((name) => name.startsWith(prefix));
    } catch {
      return false;
    }
  };
  return has('/dev/dri', 'renderD') || has('/dev', 'nvidia') || has('/dev', 'dxg'); // dxg: WSL 2
}

let adapterSeen: GpuAdapterSummary | undefined;

/** The adapter the webgpu backend was loaded on, once `loadWebGpu` has run. */
export function webGpuAdapter(): GpuAdapterSummary | undefined {
  return adapterSeen;
}

/**
 * Finds the adapter tfjs will take (it asks for 'high-performance', as here) and registers the
 * webgpu backend. With `hardwareOnly`, a software adapter is refused: on a CPU, lavapipe runs a
 * training step several times slower than wasm, so `--backend auto` passes it over, while
 * `--backend webgpu` takes it (that is how the tests run the GPU code path without a GPU).
 */
export async function loadWebGpu(options: { hardwareOnly: boolean }): Promise<GpuAdapterSummary> {
  if (options.hardwareOnly && !gpuDevicePresent()) {
    throw new Error('no GPU device on this machine (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg)');
  }
  const gpu = await provideNavigatorGpu();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter === null) {
    throw new Error(
      "no WebGPU adapter: Dawn found no Vulkan, Metal or D3D12 driver it can use (on Linux: a Vulkan ICD, e.g. Debian's mesa-vulkan-drivers)",
    );
  }
  const summary = summarize(adapter);
  if (options.hardwareOnly && summary.fallback) {
    throw new Error(`only a software adapter (${describeAdapter(summary)}), slower than wasm; --backend webgpu takes it anyway`);
  }
  await import('@tensorflow/tfjs-backend-webgpu');
  if (tf.findBackendFactory('webgpu') === null) {
    throw new Error('tfjs-backend-webgpu did not register: it was imported before navigator.gpu existed');
  }
  adapterSeen = summary;
  return summary;
}
