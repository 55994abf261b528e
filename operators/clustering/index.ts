/** Clustering-based positive sampling, its numerical core: the embedding bank, spherical k-means (in or off thread), agreement metrics, and negatives from other clusters. */
export * from './embedding-bank.js';
export * from './kmeans.js';
export * from './kmeans-worker.js';
export * from './metrics.js';
export * from './negatives.js';
