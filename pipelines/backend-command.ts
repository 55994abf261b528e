/** `densestream backend`: loads the compute backend and reports which one this machine gets, and why. */
import { parseArgs } from 'node:util';
import { parseBackendChoice, selectBackend } from '../models/backend.js';
import { checkWasmThreads, wasmThreadCount } from '../models/wasm-threads.js';
import { positiveInt } from './options.js';
import { packageJson } from './package-json.js';

export async function backendCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { backend: { type: 'string', default: 'auto' }, threads: { type: 'string' } },
  });
  const choice = parseBackendChoice(values.backend);
  const threads = values.threads === undefined ? undefined : checkWasmThreads(positiveInt(values.threads, '--threads'));
  const selection = await selectBackend(choice, { threads });
  for (const reason of selection.reasons) process.stderr.write(`${reason}\n`);
  process.stdout.write(
    `${JSON.stringify({
      backend: selection.backend,
      provider: selection.provider,
      threads: selection.backend === 'wasm' ? wasmThreadCount() : null,
      tfjs: packageJson().dependencies['@tensorflow/tfjs'],
    })}\n`,
  );
}
