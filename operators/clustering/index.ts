/** Clustering-based positive sampling, its numerical core: the embedding bank, spherical k-means (in or off thread), and agreement metrics. */
export * from './embedding-bank.js';
export * from './kmeans.js';
export * from './kmeans-worker.js';
export * from './metrics.js';
