import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { rankReference } from './helpers/rank-reference.js';
import { relativeError } from './helpers/relative-error.js';
import { selectBackend } from '../models/backend.js';
import type { LossParts } from '../methods/method.js';
import {
  alignLoss,
  argmaxCorrespondence,
  denseInfoNCE,
  infoNCE,
  l2Normalize,
  maskedAveragePool,
  pixelNTXent,
  rankDistillation,
} from '../methods/losses.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const value = (t: tf.Tensor) => t.dataSync()[0] as number;
const t2 = (rows: number[][]) => tf.tensor2d(rows);

describe('infoNCE (MoCo)', () => {
  it('equals −log(e^{q·k⁺/τ} / Σ) computed by hand', () => {
    // q·k⁺ = 1, q·k⁻ = 0, τ = 1: log(1 + e⁻¹) = 0.3132617
    expect(value(infoNCE(t2([[1, 0]]), t2([[1, 0]]), t2([[0, 1]]), 1))).toBeCloseTo(0.3132617, 6);
    // τ = 0.5 doubles the logits: log(1 + e⁻²) = 0.1269280
    expect(value(infoNCE(t2([[1, 0]]), t2([[1, 0]]), t2([[0, 1]]), 0.5))).toBeCloseTo(0.126928, 6);
    // two queries, the second as close to its negative as to its positive: (0.3132617 + log 2) / 2
    expect(
      value(
        infoNCE(
          t2([
            [1, 0],
            [0, 1],
          ]),
          t2([
            [1, 0],
            [0, 1],
          ]),
          t2([[0, 1]]),
          1,
        ),
      ),
    ).toBeCloseTo((0.3132617 + Math.LN2) / 2, 6);
  });

  it('refuses a non-positive temperature', () => {
    expect(() => infoNCE(t2([[1, 0]]), t2([[1, 0]]), t2([[0, 1]]), 0)).toThrow('temperature: expected a positive number, got 0');
  });

  it('sends gradient to the queries, pulling them toward their positives', () => {
    const q = tf.variable(l2Normalize(t2([[0.8, 0.6]])));
    const { grads } = tf.variableGrads(() => infoNCE(q as tf.Tensor2D, t2([[1, 0]]), t2([[0, 1]]), 0.2), [q]);
    const g = grads[q.name]!.dataSync();
    expect(g[0]).toBeLessThan(0); // descending the gradient increases q·k⁺
    expect(g[1]).toBeGreaterThan(0); // and decreases q·k⁻
    q.dispose();
  });
});

describe('DenseCL', () => {
  it('matches each query cell to its most similar key cell', () => {
    const q = tf.tensor3d([
      [
        [1, 0],
        [0, 1],
      ],
    ]);
    const k = tf.tensor3d([
      [
        [0, 2],
        [3, 0],
      ],
    ]);
    expect(Array.from(argmaxCorrespondence(q, k).dataSync())).toEqual([1, 0]);
  });

  it('contrasts each cell with its matched key cell against the dense queue (hand-computed)', () => {
    // Two images, each matched within itself (a batched gather that mixed images up, as wasm's
    // did, tensorflow/tfjs#8658, gives other logits).
    const q = tf.tensor3d([
      [
        [1, 0],
        [0, 1],
      ],
      [
        [0, 1],
        [1, 0],
      ],
    ]);
    const k = tf.tensor3d([
      [
        [0, 1],
        [1, 0],
      ],
      [
        [1, 0],
        [0, 1],
      ],
    ]);
    const match = tf.tensor2d(
      [
        [1, 0],
        [1, 0],
      ],
      undefined,
      'int32',
    );
    // positives equal the queries (logit 1); negative n = [0.6, 0.8] gives logits 0.6 and 0.8:
    // mean(log(1 + e^{−0.4}), log(1 + e^{−0.2})) = mean(0.5130153, 0.5981389)
    expect(value(denseInfoNCE(q, k, match as tf.Tensor2D, t2([[0.6, 0.8]]), 1))).toBeCloseTo((0.5130153 + 0.5981389) / 2, 6);
  });
});

describe('HAPiCL', () => {
  const cells = tf.tensor3d([
    [
      [1, 0],
      [0, 1],
    ],
  ]); // two orthogonal cells: e = [[e, 1], [1, e]] at τ = 1
  it('computes the pixel NT-Xent with fg–fg positives by hand', () => {
    // view 1: cell 0 foreground; view 2: both foreground → positives (0,0), (0,1): e + 1.
    // −log((e + 1 + 1) / (2e + 2 + 2)) = −log(1/2)
    expect(value(pixelNTXent(cells, cells, t2([[1, 0]]), t2([[1, 1]]), 1))).toBeCloseTo(Math.LN2, 6);
    // view 2: cell 0 foreground only → positive (0,0): −log((e + 1) / (2e + 4)) = 0.931330
    expect(value(pixelNTXent(cells, cells, t2([[1, 0]]), t2([[1, 0]]), 1))).toBeCloseTo(-Math.log((Math.E + 1) / (2 * Math.E + 4)), 5);
    // with background positives, (1,1) joins: −log((2e + 1) / (2e + 4)) = 0.382630
    expect(value(pixelNTXent(cells, cells, t2([[1, 0]]), t2([[1, 0]]), 1, true))).toBeCloseTo(
      -Math.log((2 * Math.E + 1) / (2 * Math.E + 4)),
      5,
    );
  });

  it.each([false, true])(
    'gives the pixel NT-Xent and its gradients on wasm as the broadcast-mask formula on cpu, three images of 3 against 5 cells (background positives: %s)',
    async (backgroundPositives) => {
      const inputs = () => ({
        c1: l2Normalize(tf.randomNormal([3, 3, 8], 0, 1, 'float32', 31)) as tf.Tensor3D,
        c2: l2Normalize(tf.randomNormal([3, 5, 8], 0, 1, 'float32', 32)) as tf.Tensor3D,
        m1: t2([
          [1, 0, 1],
          [0, 0, 1],
          [1, 1, 1],
        ]),
        m2: t2([
          [1, 1, 0, 0, 0],
          [0, 1, 0, 1, 1],
          [0, 0, 0, 0, 1],
        ]),
      });
      // The formula with its masks broadcast, as the loss read before its outer product.
      const reference = (c1: tf.Tensor3D, c2: tf.Tensor3D, m1: tf.Tensor2D, m2: tf.Tensor2D) => {
        const e = tf.exp(tf.div(tf.matMul(c1, c2, false, true), 0.2));
        const [a, b] = [tf.expandDims(m1, 2), tf.expandDims(m2, 1)];
        let positive = tf.mul(a, b);
        if (backgroundPositives) positive = tf.add(positive, tf.mul(tf.sub(1, a), tf.sub(1, b)));
        const [pos, all] = [tf.sum(tf.mul(e, positive), [1, 2]), tf.sum(e, [1, 2])];
        return tf.mean(tf.neg(tf.log(tf.div(tf.add(pos, 1), tf.add(all, 2)))));
      };
      const run = (loss: typeof reference) =>
        tf.tidy(() => {
          const { c1, c2, m1, m2 } = inputs();
          const f = (a: tf.Tensor, b: tf.Tensor) => loss(a as tf.Tensor3D, b as tf.Tensor3D, m1, m2);
          return [f(c1, c2), ...tf.grads(f)([c1, c2])].map((t) => t.dataSync().slice());
        });
      const expected = run(reference);
      await selectBackend('wasm', { threads: 2 });
      onTestFinished(async () => void (await tf.setBackend('cpu')));
      const before = tf.memory().numTensors;
      const got = run((c1, c2, m1, m2) => pixelNTXent(c1, c2, m1, m2, 0.2, backgroundPositives));
      expect(tf.memory().numTensors).toBe(before);
      ['loss', 'd cells1', 'd cells2'].forEach((name, i) => expect(relativeError(got[i]!, expected[i]!), name).toBeLessThanOrEqual(1e-5));
    },
  );

  it("pools features over the mask with HARL's +1: (1 + 3) / (2 + 1)", () => {
    const dense = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    const mask = tf.tensor3d([
      [
        [1, 0],
        [1, 0],
      ],
    ]);
    expect(value(maskedAveragePool(dense, mask))).toBeCloseTo(4 / 3, 6);
  });
});

describe('soft-ranking distillation', () => {
  it('matches a hand computation for two candidates: BCE(σ(−0.2), σ(0.2)) = 0.708106', () => {
    expect(value(rankDistillation(t2([[0.2, 0.4]]), t2([[0.5, 0.3]]), 1, 1, 1))).toBeCloseTo(0.708106, 5);
  });

  it('matches an independent loop implementation on random similarities', () => {
    const s = [
      [0.3, -0.1, 0.7, 0.2],
      [0.9, 0.1, -0.4, 0.5],
    ];
    const t = [
      [0.5, 0.0, 0.6, -0.2],
      [0.2, 0.4, -0.1, 0.8],
    ];
    expect(value(rankDistillation(t2(s), t2(t), 0.1, 0.04, 0.1))).toBeCloseTo(rankReference(s, t, 0.1, 0.04, 0.1), 4);
  });

  it('is lower when the online ranking follows the target than when it reverses it', () => {
    const t = t2([[0.9, 0.5, 0.1]]);
    expect(value(rankDistillation(t2([[0.8, 0.4, 0.0]]), t))).toBeLessThan(value(rankDistillation(t2([[0.0, 0.4, 0.8]]), t)));
  });
});

describe('l2Normalize', () => {
  it('gives unit rows, and a finite gradient at a zero row (masked pooling can produce one)', () => {
    const n = l2Normalize(
      t2([
        [3, 4],
        [0, 0],
      ]),
    ).arraySync();
    expect(n[0]![0]).toBeCloseTo(0.6, 6);
    expect(n[0]![1]).toBeCloseTo(0.8, 6);
    const g = tf
      .grad((x: tf.Tensor) =>
        tf.sum(
          tf.mul(
            l2Normalize(x),
            tf.tensor2d([
              [1, 2],
              [1, 2],
            ]),
          ),
        ),
      )(
        t2([
          [3, 4],
          [0, 0],
        ]),
      )
      .dataSync();
    // row [3, 4], dy [1, 2]: y = [0.6, 0.8], Σ dy·y = 2.2, r = 1/5, so dx = (dy − 2.2·y)/5;
    // the zero row: y = 0 and r = 1/√ε = 10⁶, so dx = 10⁶·dy
    expect(g[0]).toBeCloseTo(-0.064, 6);
    expect(g[1]).toBeCloseTo(0.048, 6);
    expect(g[2]! / 1e6).toBeCloseTo(1, 4);
    expect(g[3]! / 2e6).toBeCloseTo(1, 4);
  });

  it.each(['cpu', 'wasm'])(
    "differentiates as the engine's chain rule through x·(Σx² + ε)^−½ does, along any axis (%s)",
    async (backend) => {
      if (backend === 'wasm') await selectBackend('wasm', { threads: 2 });
      else await tf.setBackend(backend);
      onTestFinished(async () => void (await tf.setBackend('cpu'))); // the rest of this file's tests run there
      const before = tf.memory().numTensors;
      for (const [shape, axis] of [
        [[64, 16, 128], -1],
        [[5, 7, 3], 1],
      ] as const) {
        const [ours, engine] = tf.tidy(() => {
          const x = tf.randomNormal([...shape], 0, 2, 'float32', 11);
          const w = tf.randomNormal([...shape], 0, 1, 'float32', 12);
          const chained = (v: tf.Tensor) => tf.mul(v, tf.rsqrt(tf.add(tf.sum(tf.square(v), axis, true), 1e-12)));
          const loss = (f: (v: tf.Tensor) => tf.Tensor) => (v: tf.Tensor) => tf.sum(tf.mul(f(v), w));
          return [tf.grad(loss((v) => l2Normalize(v, axis)))(x), tf.grad(loss(chained))(x)].map((t) => t.dataSync().slice());
        });
        expect(relativeError(ours!, engine!), `${shape.join('×')} along ${axis}`).toBeLessThanOrEqual(1e-5);
      }
      expect(tf.memory().numTensors).toBe(before);
    },
  );
});

describe('align loss', () => {
  it('is added with its weight, and logged, when a method asks for it', async () => {
    const { withAlign } = await import('../methods/siamese.js');
    const { readParts } = await import('../methods/method.js');
    const parts: LossParts = {};
    const q = t2([
      [1, 0],
      [0.6, 0.8],
    ]);
    const k = t2([
      [0, 1],
      [0.6, 0.8],
    ]);
    expect(value(withAlign(tf.scalar(2), q, k, 0.5, parts))).toBeCloseTo(2 + 0.5 * 1, 6);
    expect((await readParts(parts))['align']).toBeCloseTo(1, 6);
    expect(value(withAlign(tf.scalar(2), q, k, 0, {}))).toBe(2);
  });

  it('is the mean squared distance between paired projections', () => {
    expect(
      value(
        alignLoss(
          t2([
            [1, 0],
            [0.6, 0.8],
          ]),
          t2([
            [0, 1],
            [0.6, 0.8],
          ]),
        ),
      ),
    ).toBeCloseTo(1, 6); // (2 + 0) / 2
  });
});
