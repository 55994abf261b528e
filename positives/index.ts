/**
 * Clustering-based positives (soft-label self-distillation, docs/methods.md) as one module:
 * the embedding bank and its k-means in a worker (`reclustering.ts`, on the schedule of
 * `recluster-schedule.ts`), negatives from other clusters (`negative-sampler.ts`), the
 * reservoir of recent samples a stream draws from, and their checkpoint codec. A run uses it
 * through `openPositives` (the run's positives and their trainer hook) and `pairPositives` (the
 * data plane's operator, reading a positive again by id or taking it from the reservoir).
 */
export * from './anchor-embedder.js';
export * from './checkpoint-codec.js';
export * from './cluster-index.js';
export * from './cluster-metrics.js';
export * from './cluster-positives.js';
export * from './embedding-bank.js';
export * from './kmeans.js';
export * from './kmeans-worker.js';
export * from './negative-sampler.js';
export * from './negatives.js';
export * from './pair-by-id.js';
export * from './pair-counts.js';
export * from './pair-from-reservoir.js';
export * from './pair-positives.js';
export * from './pairing.js';
export * from './recluster-schedule.js';
export * from './reclustering.js';
export * from './reservoir.js';
export * from './run-positives.js';
