/** Clustering-based positive sampling, its numerical core: the embedding bank, spherical k-means (in or off thread), agreement metrics, negatives from other clusters, and the reservoir of recent samples a stream draws positives from. */
export * from './embedding-bank.js';
export * from './kmeans.js';
export * from './kmeans-worker.js';
export * from './metrics.js';
export * from './negatives.js';
export * from './reservoir.js';
