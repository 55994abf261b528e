/** `densestream backend`: loads the compute backend and reports which one this machine gets, and why. */
import * as z from 'zod';
import { parseCommand, type CommandSchema } from './command-schema.js';
import { packageJson } from './package-json.js';
import { BACKEND_OPTIONS } from './shared-options.js';

export const BACKEND_COMMAND = {
  name: 'backend',
  summary: 'load the compute backend and report which one this machine gets, and why',
  options: z.object({ ...BACKEND_OPTIONS }),
  notes:
    "Prints one JSON line: the backend taken, its provider, wasm threads, which build of the project's own wasm kernels ran (simd or relaxed-simd), the WebGPU adapter, the tfjs version, and the candidates passed over with their reasons.",
} satisfies CommandSchema;

export type BackendConfig = z.output<typeof BACKEND_COMMAND.options>;

export function parseBackendConfig(argv: readonly string[]): BackendConfig {
  return parseCommand(BACKEND_COMMAND, argv).values;
}

/** `densestream backend` with its options parsed (`parseBackendConfig`). */
export async function backendCommand(values: BackendConfig): Promise<void> {
  // The engine loads only once the options are known good: a wrong one is refused at once.
  const { backendLines, selectBackend } = await import('../models/backend.js');
  const { wasmThreadCount } = await import('../models/wasm-threads.js');
  const selection = await selectBackend(values.backend, values.threads === undefined ? {} : { threads: values.threads });
  for (const line of backendLines(selection, values.verbose)) process.stderr.write(`${line}\n`);
  process.stdout.write(
    `${JSON.stringify({
      backend: selection.backend,
      provider: selection.provider,
      threads: selection.backend === 'wasm' ? wasmThreadCount() : null,
      kernelBuild: selection.kernelBuild ?? null,
      adapter: selection.adapter ?? null,
      tfjs: packageJson().dependencies['@tensorflow/tfjs'],
      passedOver: selection.reasons
        .filter((line) => line.startsWith('backend: passed over'))
        .map((line) => line.slice('backend: passed over '.length)),
    })}\n`,
  );
}
