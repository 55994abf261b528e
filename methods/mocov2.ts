/**
 * MoCo v2 (METHODS.md §0), the instance-level baseline: the online branch's projection of view 1
 * is the query, the momentum branch's projection of view 2 the positive key, a queue of past
 * keys the negatives. `L = InfoNCE(q, k⁺, queue; τ = 0.2)`, momentum m = 0.999 at ImageNet
 * scale (0.99 suits the short runs here), queue scaled to the data.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../core/batch.js';
import { infoNCE, l2Normalize } from './losses.js';
import { logPart, type Method } from './method.js';
import { KeyQueue } from './momentum.js';
import { createSiamese, siameseMethod, withAlign, type SiameseOptions } from './siamese.js';

export interface MocoOptions extends SiameseOptions {
  temperature?: number;
  momentum?: number;
  queueSize?: number;
}

export function createMocoV2(o: MocoOptions): Method {
  const tau = o.temperature ?? 0.2;
  const m = o.momentum ?? 0.99;
  const pair = createSiamese(o);
  const queue = new KeyQueue(o.queueSize ?? 4096, o.dim ?? 128, (o.seed ?? 0) + 7, 'mocov2/queue');
  return siameseMethod({
    name: 'mocov2',
    pair,
    momentum: m,
    queues: { queue },
    loss(batch: Batch, parts, stage) {
      const [v1, v2] = batch.views as [tf.Tensor4D, tf.Tensor4D];
      const q = l2Normalize(pair.online.global.apply(pair.online.encoder.apply(v1, { training: true }).pooled));
      const k = tf.tidy(() => l2Normalize(pair.momentum.global.apply(pair.momentum.encoder.apply(v2, { training: true }).pooled)));
      stage(queue, k);
      const loss = infoNCE(q, k, queue.keys as tf.Tensor2D, tau);
      logPart(parts, 'global', loss);
      return withAlign(loss, q, k, o.alignWeight, parts);
    },
  });
}
