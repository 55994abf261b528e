/**
 * Registers the multi-threaded wasm build of tfjs (XNNPACK + SIMD + pthreads) under Node.
 *
 * tfjs-backend-wasm ships `tfjs-backend-wasm-threaded-simd.wasm` but never loads it under
 * Node (tensorflow/tfjs#3830), for two reasons this module works around:
 * 1. it hands Emscripten Blob URLs for the pthread worker and the main script, which
 *    `worker_threads` cannot load: here both are real files;
 * 2. its C++ caps the XNNPACK pool at `emscripten_num_logical_cores() / 2` (it assumes two
 *    hyper-threads per core), so a 2-core machine gets one thread: here that import reports
 *    twice the requested thread count, so the cap equals the request.
 * Everything else — kernels, memory, the BackendWasm class — is the package's own.
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** The part of the WebAssembly global used here (TypeScript's lib has it only with DOM). */
declare const WebAssembly: {
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: object; module: object }>;
};

/** The slice of an Emscripten module the tfjs backend needs. */
interface EmscriptenModule {
  PThread: { unusedWorkers: Array<{ unref(): void }>; runningWorkers: Array<{ unref(): void }> };
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  tfjs?: Record<string, (...args: number[]) => number>;
}
type WasmFactory = (config: Record<string, unknown>) => Promise<EmscriptenModule>;
interface WasmPackage {
  BackendWasm: new (module: EmscriptenModule) => tf.KernelBackend;
  setThreadsCount(n: number): void;
  getThreadsCount(): number;
}

const BUILD = 'tfjs-backend-wasm-threaded-simd';

function wasmOutDir(): string {
  return dirname(require.resolve(`@tensorflow/tfjs-backend-wasm/wasm-out/${BUILD}.js`));
}

/** Writes the pthread worker script to a file once per process (Node workers need a path). */
let workerScript: string | undefined;
function workerScriptPath(dir: string): string {
  if (workerScript) return workerScript;
  const { wasmWorkerContents } = require(join(dir, `${BUILD}.worker.js`)) as { wasmWorkerContents: string };
  const folder = mkdtempSync(join(tmpdir(), 'densestream-wasm-'));
  workerScript = join(folder, 'worker.cjs');
  // The package escapes newlines the same way before it makes its Blob: the source holds
  // string literals with literal "\n" that must stay escape sequences.
  writeFileSync(workerScript, wasmWorkerContents.replace(/\n/g, '\\n'));
  return workerScript;
}

/** Refuses a thread count the threaded build cannot honour (it pre-spawns 8 workers). */
export function checkWasmThreads(threads: number, field = '--threads'): number {
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) {
    throw new Error(`${field}: expected an integer from 1 to 8, got "${threads}"`);
  }
  return threads;
}

/** Threads the machine can give compute; the default for {@link registerThreadedWasm}. */
export function defaultWasmThreads(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

/**
 * Replaces the package's `wasm` backend factory with one that loads the threaded build
 * with `threads` XNNPACK threads (1–8; 8 workers are pre-spawned by the build).
 * Call before `tf.setBackend('wasm')`.
 */
export function registerThreadedWasm(threads: number = defaultWasmThreads()): void {
  checkWasmThreads(threads);
  const pkg = require('@tensorflow/tfjs-backend-wasm') as WasmPackage;
  const dir = wasmOutDir();
  const factory = require(join(dir, `${BUILD}.js`)) as WasmFactory;
  const binary = join(dir, `${BUILD}.wasm`);
  const mainScript = join(dir, `${BUILD}.js`);
  const worker = workerScriptPath(dir);

  tf.removeBackend('wasm');
  tf.registerBackend(
    'wasm',
    async () => {
      const module = await factory({
        locateFile: (path: string) => (path.endsWith('.worker.js') ? worker : join(dir, path)),
        mainScriptUrlOrBlob: mainScript,
        instantiateWasm: (
          imports: { env: Record<string, unknown> },
          receive: (instance: object, module: object) => void,
        ) => {
          imports.env['emscripten_num_logical_cores'] = () => 2 * threads;
          void WebAssembly.instantiate(readFileSync(binary), imports).then((r) =>
            receive(r.instance, r.module),
          );
          return {};
        },
      });
      // The same bridge tfjs builds in its own init().
      module.tfjs = {
        init: module.cwrap('init', null, []),
        initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
        getThreadsCount: module.cwrap('get_threads_count', 'number', []),
        registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
        disposeData: module.cwrap('dispose_data', null, ['number']),
        dispose: module.cwrap('dispose', null, []),
      };
      pkg.setThreadsCount(threads);
      const backend = new pkg.BackendWasm(module); // starts the XNNPACK pool
      // Pool threads wait forever for work; they must not keep the process alive.
      for (const w of [...module.PThread.runningWorkers, ...module.PThread.unusedWorkers]) w.unref();
      return backend;
    },
    3,
  );
}

/** XNNPACK threads of the active wasm backend (1 for the single-threaded build). */
export function wasmThreadCount(): number {
  const pkg = require('@tensorflow/tfjs-backend-wasm') as WasmPackage;
  return pkg.getThreadsCount();
}
