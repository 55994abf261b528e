/**
 * Queries against a queue of keys (models/key-similarity.ts): values and the query gradient by
 * hand and against the plain product on cpu (to 1e-5: the gradient sums hundreds of products in
 * another order), in both of wasm's forms; no gradient into the keys; numTensors flat.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from './helpers/relative-error.js';
import { selectBackend } from '../models/backend.js';
import { KEYS_FIRST_MAX_QUERIES, keySimilarities } from '../models/key-similarity.js';

describe('keySimilarities', () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });

  it.each(['cpu', 'wasm'])('gives q · keysᵀ and, for Σ w ⊙ S, the query gradient w · keys, by hand (%s)', async (backend) => {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const [values, dq] = tf.tidy(() => {
      const q = tf.tensor2d([
        [1, 2],
        [0, -1],
      ]);
      const makeKeys = () =>
        tf.tensor2d([
          [3, 0],
          [1, 1],
          [0, 2],
        ]);
      const keys = makeKeys();
      const w = tf.tensor2d([
        [1, 0, 2],
        [-1, 1, 0],
      ]);
      const s = keySimilarities(q, keys);
      // keys made inside the differentiated function, which the engine frees after the forward
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(keySimilarities(x as tf.Tensor2D, makeKeys()), w)))(q);
      return [s.arraySync(), g.arraySync()];
    });
    // rows of q against rows of keys: [1·3 + 2·0, 1 + 2, 4], [0, −1, −2]
    expect(values).toEqual([
      [3, 3, 4],
      [0, -1, -2],
    ]);
    // Σ_k w[n, k] · keys[k]: [3, 0] + 2·[0, 2] = [3, 4]; −[3, 0] + [1, 1] = [−2, 1]
    expect(dq).toEqual([
      [3, 4],
      [-2, 1],
    ]);
    expect(tf.memory().numTensors).toBe(before);
  });

  // 64 queries are multiplied keys first on wasm; 300, above KEYS_FIRST_MAX_QUERIES, the other way round.
  it.each([
    { n: 64, k: 1030 },
    { n: 300, k: 600 },
  ])(
    'matches the plain product and its gradient on cpu for $n queries against $k keys, and passes no gradient to the keys',
    async ({ n, k }) => {
      expect(n <= KEYS_FIRST_MAX_QUERIES).toBe(n === 64);
      const inputs = () => ({
        q: tf.randomNormal([n, 32], 0, 1, 'float32', 1) as tf.Tensor2D,
        keys: tf.randomNormal([k, 32], 0, 1, 'float32', 2) as tf.Tensor2D,
        w: tf.randomNormal([n, k], 0, 1, 'float32', 3),
      });
      const run = () =>
        tf.tidy(() => {
          const { q, keys, w } = inputs();
          const f = (x: tf.Tensor) => tf.sum(tf.mul(keySimilarities(x as tf.Tensor2D, keys), w));
          return [keySimilarities(q, keys), tf.grad(f)(q)].map((t) => t.dataSync().slice());
        });
      await tf.setBackend('cpu');
      const reference = tf.tidy(() => {
        const { q, keys, w } = inputs();
        return [tf.matMul(q, tf.transpose(keys)), tf.matMul(w, keys)].map((t) => t.dataSync().slice());
      });
      for (const backend of ['cpu', 'wasm']) {
        await tf.setBackend(backend);
        const before = tf.memory().numTensors;
        const [values, dq] = run();
        expect(relativeError(values!, reference[0]!), `${backend} values`).toBeLessThanOrEqual(1e-5);
        expect(relativeError(dq!, reference[1]!), `${backend} gradient`).toBeLessThanOrEqual(1e-5);
        expect(tf.memory().numTensors).toBe(before);
        // After the count: tfjs itself leaves the forward's tensors behind when tf.grad refuses.
        const [q, keys] = [tf.ones([2, 3]) as tf.Tensor2D, tf.ones([4, 3])];
        expect(() => tf.grad((x: tf.Tensor) => tf.sum(keySimilarities(q, x as tf.Tensor2D)))(keys)).toThrow('Cannot compute gradient');
        tf.dispose([q, keys]);
      }
    },
  );
});
