/**
 * The `--backend` choices and the default thread count, apart from the backends themselves:
 * the command line's help and usage checks read them without loading TensorFlow.js (about
 * 2.5 s of start-up here).
 */
import { availableParallelism } from 'node:os';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** Parses a `--backend` value, naming the flag when it is wrong. */
export function parseBackendChoice(value: string, field = '--backend'): BackendChoice {
  if ((BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
  throw new Error(`${field}: expected one of ${BACKEND_CHOICES.join('|')}, got "${value}"`);
}

/** Threads the machine can give compute: the wasm backend's default (1–8). */
export function defaultWasmThreads(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

/** Refuses a thread count the threaded build cannot honour (it pre-spawns 8 workers). */
export function checkWasmThreads(threads: number, field = '--threads'): number {
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) {
    throw new Error(`${field}: expected an integer from 1 to 8, got "${threads}"`);
  }
  return threads;
}
