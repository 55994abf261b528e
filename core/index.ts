/**
 * The contracts every layer shares: sample and batch shapes, keyed randomness, the
 * configuration error, and whole-file writes. core/ imports no other folder of densestream.
 */
export * from './sample.js';
export * from './random.js';
export type { Batch } from './batch.js';
export { ConfigError, toConfigError } from './config-error.js';
export { partialPath, removePartials, sha256File, writeFileAtomic } from './atomic-file.js';
