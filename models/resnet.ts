/**
 * ResNet encoders (basic blocks) returning both the last dense feature map and its pooled
 * vector — the dense methods contrast the map's cells, the global ones its average.
 *
 * Written with `tf.conv2d` and variables rather than `tf.layers`: the layers API convolves
 * through `tf.fused.conv2d`, whose gradient calls `Conv2DBackpropFilter` directly, which wasm
 * lacks. Here every convolution goes through the gradients of `conv-gradients.ts`.
 *
 * Shapes by letter: `B` batch, `H×W` input, `S` = H / stride (the dense grid), `C` channels.
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormRelu, batchNormTraining, scaleCentred } from './batch-norm.js';
import { variableFrom } from './variables.js';
import { blendOf } from './kernels/update-kernels.js';
import { tfSeed } from './seed.js';
import type { Encoder, ResNetConfig } from './encoder-spec.js';
import { convStd, type WeightInit } from './weight-init.js';

/** Refuses a config that cannot build, naming the field. */
export function checkResNetConfig(c: ResNetConfig): void {
  if (!Number.isInteger(c.width) || c.width < 1) throw new Error(`encoder.width: expected a positive integer, got ${c.width}`);
  if (!Array.isArray(c.blocks) || c.blocks.length === 0 || !c.blocks.every((b) => Number.isInteger(b) && b >= 1)) {
    throw new Error(`encoder.blocks: expected a non-empty list of positive integers, got ${JSON.stringify(c.blocks)}`);
  }
  if (c.stemStride !== 1 && c.stemStride !== 2) throw new Error(`encoder.stemStride: expected 1 or 2, got ${String(c.stemStride)}`);
}

const BN_MOMENTUM = 0.9; // running = m·running + (1 − m)·batch, as PyTorch's momentum 0.1

interface BatchNorm {
  gamma: tf.Variable;
  beta: tf.Variable;
  mean: tf.Variable;
  variance: tf.Variable;
}

interface Conv {
  filter: tf.Variable;
  stride: number;
  bn: BatchNorm;
}

interface Block {
  a: Conv;
  b: Conv;
  shortcut?: Conv;
}

/**
 * Builds an encoder with He-normal weights, on fan_in or with `init: 'reference'` on fan_out as
 * torchvision's ResNet (weight-init.ts), deterministic from `seed`.
 *
 * @example
 * const encoder = createResNet(RESNET_PRESETS.slim, 1);
 * const { dense, pooled } = encoder.apply(images, { training: true }); // [B,8,8,128], [B,128] at 64 px
 */
export function createResNet(config: ResNetConfig, seed = 0, scope = 'encoder', init: WeightInit = 'densestream'): Encoder {
  checkResNetConfig(config);
  const trainable: tf.Variable[] = [];
  const state: tf.Variable[] = [];
  const weights: Record<string, tf.Variable> = {};
  // tfjs names variables globally: the scope keeps an online and a momentum encoder apart.
  const variable = (init: tf.Tensor, trainableFlag: boolean, name: string): tf.Variable => {
    const v = variableFrom(init, trainableFlag, `${scope}/${name}`);
    weights[name] = v;
    (trainableFlag ? trainable : state).push(v);
    return v;
  };
  const conv = (k: number, inC: number, outC: number, stride: number, name: string): Conv => {
    const std = convStd(k, inC, outC, init);
    const filter = variable(tf.randomNormal([k, k, inC, outC], 0, std, 'float32', tfSeed(seed, name)), true, `${name}/w`);
    const bn: BatchNorm = {
      gamma: variable(tf.ones([outC]), true, `${name}/bn/gamma`),
      beta: variable(tf.zeros([outC]), true, `${name}/bn/beta`),
      mean: variable(tf.zeros([outC]), false, `${name}/bn/mean`),
      variance: variable(tf.ones([outC]), false, `${name}/bn/variance`),
    };
    return { filter, stride, bn };
  };

  const stem = conv(3, 3, config.width, config.stemStride, 'stem');
  const blocks: Block[] = [];
  let channels = config.width;
  let stride = config.stemStride;
  config.blocks.forEach((count, stage) => {
    const outC = config.width * 2 ** stage;
    for (let i = 0; i < count; i++) {
      const s = stage > 0 && i === 0 ? 2 : 1;
      const name = `stage${stage}/block${i}`;
      const block: Block = { a: conv(3, channels, outC, s, `${name}/a`), b: conv(3, outC, outC, 1, `${name}/b`) };
      if (s !== 1 || channels !== outC) block.shortcut = conv(1, channels, outC, s, `${name}/shortcut`);
      blocks.push(block);
      channels = outC;
      stride *= s;
    }
  });

  /** conv → batch norm, then, with `end`, + its residual and ReLU (fused in training: batchNormRelu). */
  const applyConv = (x: tf.Tensor4D, c: Conv, training: boolean, end?: { residual?: tf.Tensor4D }): tf.Tensor4D => {
    const y = tf.conv2d(x, c.filter as tf.Tensor4D, c.stride, 'same');
    if (!training) {
      let out: tf.Tensor4D = scaleCentred(tf.sub(y, c.bn.mean), c.bn.variance, c.bn.gamma, c.bn.beta);
      if (end?.residual) out = tf.add(out, end.residual) as tf.Tensor4D;
      return end ? (tf.relu(out) as tf.Tensor4D) : out;
    }
    const {
      y: normalised,
      mean,
      variance,
    } = end ? batchNormRelu(y, c.bn.gamma, c.bn.beta, end.residual) : batchNormTraining(y, c.bn.gamma, c.bn.beta);
    // Running statistics from this batch (PyTorch's unbiased variance), one kernel call each where
    // the ops made three; `assign` is not differentiated, so they never feed the gradient.
    const n = y.shape[0] * y.shape[1] * y.shape[2];
    c.bn.mean.assign(blendOf(c.bn.mean, mean, BN_MOMENTUM, 1 - BN_MOMENTUM));
    c.bn.variance.assign(blendOf(c.bn.variance, variance, BN_MOMENTUM, (1 - BN_MOMENTUM) * (n / Math.max(1, n - 1))));
    return normalised;
  };

  return {
    config,
    channels,
    stride,
    trainable,
    state,
    weights,
    apply(images, { training }) {
      return tf.tidy(() => {
        let h = applyConv(images, stem, training, {});
        for (const block of blocks) {
          const a = applyConv(h, block.a, training, {});
          const skip = block.shortcut ? applyConv(h, block.shortcut, training) : h;
          h = applyConv(a, block.b, training, { residual: skip });
        }
        return { dense: h, pooled: tf.mean(h, [1, 2]) as tf.Tensor2D };
      });
    },
    dispose() {
      tf.dispose([...trainable, ...state]);
    },
  };
}
