/** `densestream backend`: loads the compute backend and reports which one this machine gets, and why. */
import { parseArgs } from 'node:util';
import { checkWasmThreads, parseBackendChoice } from '../models/backend-choice.js';
import { positiveInt } from './options.js';
import { packageJson } from './package-json.js';

export async function backendCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { backend: { type: 'string', default: 'auto' }, threads: { type: 'string' } },
  });
  const choice = parseBackendChoice(values.backend);
  const threads = values.threads === undefined ? undefined : checkWasmThreads(positiveInt(values.threads, '--threads'));
  // The engine loads only once the options are known good: a wrong one is refused at once.
  const { selectBackend } = await import('../models/backend.js');
  const { wasmThreadCount } = await import('../models/wasm-threads.js');
  const selection = await selectBackend(choice, { threads });
  for (const reason of selection.reasons) process.stderr.write(`${reason}\n`);
  process.stdout.write(
    `${JSON.stringify({
      backend: selection.backend,
      provider: selection.provider,
      threads: selection.backend === 'wasm' ? wasmThreadCount() : null,
      adapter: selection.adapter ?? null,
      tfjs: packageJson().dependencies['@tensorflow/tfjs'],
    })}\n`,
  );
}
