/**
 * The reference net of the train-step benchmark (foundation issue): four 3×3 convolutions
 * (stride 2 → 32, stride 2 → 64, stride 2 → 128, stride 1 → 128; ReLU, same padding),
 * global average pool, dense 10, softmax cross-entropy, plain SGD.
 * `bench/torch_reference.py` builds the same net in PyTorch.
 */
import * as tf from '@tensorflow/tfjs';
import { createMlp } from '../models/heads.js';
import { RESNET_PRESETS } from '../models/encoder-spec.js';
import { createResNet } from '../models/resnet.js';
import { tfSeed } from '../models/seed.js';

export interface ReferenceNet {
  variables: tf.Variable[];
  /** One SGD step on `(images [B,H,W,3], labels [B])`; returns the loss before the step. */
  /** One SGD step; resolves to its loss once the backend has computed it (read asynchronously: a GPU has no synchronous read under Node). */
  step(images: tf.Tensor4D, labels: tf.Tensor1D, learningRate: number): Promise<number>;
  dispose(): void;
}

const LAYERS: ReadonlyArray<{ out: number; stride: number }> = [
  { out: 32, stride: 2 },
  { out: 64, stride: 2 },
  { out: 128, stride: 2 },
  { out: 128, stride: 1 },
];

/** Deterministic He-uniform init, so two backends start from the same weights. */
function init(shape: number[], fanIn: number, seed: number, name: string): tf.Tensor {
  const limit = Math.sqrt(6 / fanIn);
  return tf.randomUniform(shape, -limit, limit, 'float32', tfSeed(seed, name));
}

export function createReferenceNet(seed = 1, classes = 10): ReferenceNet {
  const variables: tf.Variable[] = [];
  const convs: Array<{ w: tf.Variable; b: tf.Variable; stride: number }> = [];
  let inC = 3;
  LAYERS.forEach(({ out, stride }, i) => {
    const w = tf.variable(init([3, 3, inC, out], 9 * inC, seed, `conv${i}`), true, `conv${i}/w`);
    const b = tf.variable(tf.zeros([out]), true, `conv${i}/b`);
    convs.push({ w, b, stride });
    variables.push(w, b);
    inC = out;
  });
  const fcW = tf.variable(init([inC, classes], inC, seed, 'fc'), true, 'fc/w');
  const fcB = tf.variable(tf.zeros([classes]), true, 'fc/b');
  variables.push(fcW, fcB);

  const forward = (x: tf.Tensor4D): tf.Tensor2D => {
    let h: tf.Tensor4D = x;
    for (const c of convs) h = tf.relu(tf.add(tf.conv2d(h, c.w as tf.Tensor4D, c.stride, 'same'), c.b)) as tf.Tensor4D;
    const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
    return tf.add(tf.matMul(pooled, fcW as tf.Tensor2D), fcB);
  };

  return sgdClassifier(variables, forward, classes, () => variables.forEach((v) => v.dispose()));
}

/** SGD on softmax cross-entropy over `forward`'s logits: the step both reference nets share. */
function sgdClassifier(
  variables: tf.Variable[],
  forward: (images: tf.Tensor4D) => tf.Tensor2D,
  classes: number,
  release: () => void,
): ReferenceNet {
  const optimizer = tf.train.sgd(0.1);
  return {
    variables,
    async step(images, labels, learningRate) {
      optimizer.setLearningRate(learningRate);
      const loss = optimizer.minimize(
        () => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, classes), forward(images)) as tf.Scalar,
        true,
        variables,
      );
      if (!loss) throw new Error('reference net: optimizer returned no loss');
      const value = (await loss.data())[0] ?? Number.NaN;
      loss.dispose();
      return value;
    },
    dispose() {
      optimizer.dispose();
      release();
    },
  };
}

/**
 * The second reference net: the trainer's slim ResNet encoder (batch norm in training mode)
 * with a linear classifier on the pooled features, same loss and optimiser.
 */
export function createResNetClassifier(seed = 1, classes = 10, preset: keyof typeof RESNET_PRESETS = 'slim'): ReferenceNet {
  const encoder = createResNet(RESNET_PRESETS[preset], seed, 'bench-resnet');
  const head = createMlp([encoder.channels, classes], seed, 'bench-resnet-fc');
  const variables = [...encoder.trainable, ...head.trainable];
  const forward = (images: tf.Tensor4D) => head.apply(encoder.apply(images, { training: true }).pooled);
  return sgdClassifier(variables, forward, classes, () => {
    encoder.dispose();
    head.dispose();
  });
}
