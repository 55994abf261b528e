/**
 * The contracts every layer shares: sample and batch shapes, keyed randomness, the
 * configuration error, whole-file writes, and the one-pass view-cutting kernel's interface. core/ imports no other folder of densestream.
 */
export * from './sample.js';
export * from './random.js';
export type { Batch } from './batch.js';
export { ConfigError, toConfigError } from './config-error.js';
export { CUT_VIEWS_KERNEL, CUT_VIEW_PARAMS } from './cut-views-kernel.js';
export { partialPath, removePartials, sha256File, writeFileAtomic } from './atomic-file.js';
