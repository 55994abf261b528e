/** The shared contracts: sample shapes and keyed randomness. The only thing datasets import. */
export * from './sample.js';
export * from './random.js';
