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
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { checkWasmThreads, defaultWasmThreads } from './backend-choice.js';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';

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

/**
 * The pthread worker script as a file (Node workers need a path). One file per tfjs version,
 * shared by every process and written atomically, so nothing piles up in the temp folder.
 */
function workerScriptPath(dir: string): string {
  const { version } = require('@tensorflow/tfjs-backend-wasm/package.json') as { version: string };
  const path = join(tmpdir(), `densestream-tfjs-wasm-${version}-worker.cjs`);
  if (existsSync(path)) return path;
  const { wasmWorkerContents } = require(join(dir, `${BUILD}.worker.js`)) as { wasmWorkerContents: string };
  // The package escapes newlines the same way before it makes its Blob: the source holds
  // string literals with literal "\n" that must stay escape sequences.
  writeFileAtomic(path, wasmWorkerContents.replace(/\n/g, '\\n'));
  return path;
}

/** Threads of the threaded build registered in this process; the wasm module is one per process. */
let registeredThreads: number | undefined;

/**
 * The wasm module, once started, keeps its thread pool for the life of the process (removing
 * it would free every live tensor). Refuses a request for a different count.
 */
export function checkSameWasmThreads(threads: number): void {
  // The engine's registry of started backends (tfjs 4, pinned): tf.findBackend would start it.
  const started = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry['wasm'] !== undefined;
  const running = started ? (registeredThreads ?? 1) : undefined;
  if (running !== undefined && running !== threads) {
    throw new Error(
      `--threads: the wasm backend already runs with ${running} thread${running === 1 ? '' : 's'} in this process and cannot change to ${threads}`,
    );
  }
}

// Threads the machine can give compute, the default for registerThreadedWasm; defined where the CLI's help reads it without tfjs.
export { defaultWasmThreads };

/**
 * Replaces the package's `wasm` backend factory with one that loads the threaded build
 * with `threads` XNNPACK threads (1–8; 8 workers are pre-spawned by the build).
 * Call before `tf.setBackend('wasm')`.
 */
export function registerThreadedWasm(threads: number = defaultWasmThreads()): void {
  checkWasmThreads(threads);
  checkSameWasmThreads(threads);
  if (registeredThreads === threads) return;
  const pkg = require('@tensorflow/tfjs-backend-wasm') as WasmPackage;
  const dir = wasmOutDir();
  const factory = require(join(dir, `${BUILD}.js`)) as WasmFactory;
  const binary = join(dir, `${BUILD}.wasm`);
  const mainScript = join(dir, `${BUILD}.js`);
  const worker = workerScriptPath(dir);

  tf.removeBackend('wasm');
  registeredThreads = threads;
  tf.registerBackend(
    'wasm',
    async () => {
      // Emscripten has no error path for a failed instantiateWasm: race it against one.
      let loadFailed: (err: unknown) => void = () => {};
      const failure = new Promise<never>((_, reject) => {
        loadFailed = reject;
      });
      const loading = factory({
        locateFile: (path: string) => (path.endsWith('.worker.js') ? worker : join(dir, path)),
        mainScriptUrlOrBlob: mainScript,
        instantiateWasm: (imports: { env: Record<string, unknown> }, receive: (instance: object, module: object) => void) => {
          imports.env['emscripten_num_logical_cores'] = () => 2 * threads;
          WebAssembly.instantiate(readFileSync(binary), imports).then(
            (r) => receive(r.instance, r.module),
            (err: unknown) => loadFailed(err),
          );
          return {};
        },
      });
      const module = await Promise.race([loading, failure]);
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
