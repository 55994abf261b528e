/**
 * `npm run bench -- parity [--method NAME] [--check]`: densestream against its PyTorch twin
 * (`torch_parity.py`), one training step and a 20-step run of every method on identical inputs
 * (`parity-cases.ts`). Without `--check` it regenerates the fixtures first: exports
 * densestream's initial weights into `test/fixtures/parity/METHOD.json` and has the twin add
 * its numbers; with `--check` it only compares against the fixtures on disk (no torch needed).
 * Prints `{"bench":"parity","method","loss","worstGrad","grad","worstState","state","curve"}` per
 * method: the largest relative error of each quantity, the tensor it was found in.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { selectBackend } from '../models/backend.js';
import {
  densestreamNumbers,
  parityErrors,
  parityFixturePath,
  parityInputs,
  PARITY_METHODS,
  type ParityFixture,
  type ParityMethod,
} from './parity-cases.js';
import { benchFile, pythonHas, runForJson, SYSTEM_PYTHON } from './report.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function worst(errors: Record<string, number>): [string, number] {
  return Object.entries(errors).reduce<[string, number]>((w, e) => (e[1] > w[1] ? e : w), ['', 0]);
}

export async function parityBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { method: { type: 'string' }, check: { type: 'boolean', default: false } } });
  const methods = values.method === undefined ? [...PARITY_METHODS] : [values.method];
  for (const m of methods) {
    if (!(PARITY_METHODS as readonly string[]).includes(m))
      throw new Error(`--method: expected one of ${PARITY_METHODS.join('|')}, got "${m}"`);
  }
  if (!values.check && !pythonHas('torch'))
    throw new Error('parity: regenerating the fixtures needs PyTorch (apt-get install python3-torch); --check compares with those on disk');
  await selectBackend('wasm', { threads: 1 });
  for (const method of methods as ParityMethod[]) {
    const path = parityFixturePath(ROOT, method);
    if (!values.check) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, `${JSON.stringify(await parityInputs(method))}\n`);
      runForJson('PyTorch twin', SYSTEM_PYTHON, [benchFile('torch_parity.py', true), path]);
    }
    const fixture = JSON.parse(readFileSync(path, 'utf8')) as ParityFixture;
    if (!fixture.torch) throw new Error(`${path}: no twin numbers in it; run without --check to regenerate`);
    const errors = parityErrors(await densestreamNumbers(fixture), fixture.torch);
    const [worstGrad, grad] = worst(errors.grads);
    const [worstState, state] = worst(errors.afterStep);
    process.stdout.write(
      `${JSON.stringify({ bench: 'parity', method, loss: errors.loss, parts: errors.parts, worstGrad, grad, worstState, state, curve: errors.curve })}\n`,
    );
  }
}
