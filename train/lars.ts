/**
 * LARS (You et al., 2017) in its clipped form (LARC; solo-learn's `clip_lr`, NVIDIA apex):
 * momentum SGD whose rate for each weight tensor is `min(η·‖w‖ / ‖g + λw‖, lr)`, so no layer
 * moves by more than a fraction η of its norm per step, and none faster than plain SGD would.
 * Biases and batch-norm parameters take plain momentum SGD, without the ratio or weight decay
 * (SimCLR's exclusion).
 *
 *   u = g + λ·w                                   (adapted tensors only)
 *   rate = min(η·‖w‖ / ‖u‖, lr)   (lr if either norm is 0)
 *   v ← m·v + rate·u ;  w ← w − v
 *
 * η defaults to 0.02 (solo-learn); the unclipped paper form with η = 0.001 is tuned for
 * batches of thousands and barely moves a 32-image run.
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedTensor } from '../models/weights-io.js';

export interface LarsOptions {
  momentum?: number;
  /** λ, coupled (inside the trust ratio), on adapted tensors only. */
  weightDecay?: number;
  /** Trust coefficient η. */
  eta?: number;
  /** Tensors that get the trust ratio and weight decay (default: names ending in `/w`: conv and dense weights). */
  adapt?: (variableName: string) => boolean;
}

export class LarsOptimizer extends tf.Optimizer {
  static readonly className = 'Lars';

  private slots: Array<{ originalName: string; variable: tf.Variable } | undefined> = [];
  private readonly momentum: number;
  private readonly weightDecay: number;
  private readonly eta: number;
  private readonly adapt: (name: string) => boolean;

  constructor(
    public learningRate: number,
    options: LarsOptions = {},
  ) {
    super();
    this.momentum = options.momentum ?? 0.9;
    this.weightDecay = options.weightDecay ?? 0;
    this.eta = options.eta ?? 0.02;
    this.adapt = options.adapt ?? ((name) => /\/w$/.test(name));
    for (const [k, v] of Object.entries({ momentum: this.momentum, weightDecay: this.weightDecay, eta: this.eta, learningRate })) {
      if (!(Number.isFinite(v) && v >= 0)) throw new Error(`lars ${k}: expected a number ≥ 0, got ${v}`);
    }
  }

  setLearningRate(lr: number): void {
    this.learningRate = lr;
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const entries = Array.isArray(variableGradients)
      ? variableGradients.map((g) => [g.name, g.tensor] as const)
      : Object.entries(variableGradients);
    entries.forEach(([name, gradient], i) => {
      const value = tf.engine().registeredVariables[name];
      if (!value || !gradient) return;
      const slot = (this.slots[i] ??= {
        originalName: `${name}/momentum`,
        variable: tf.tidy(() => tf.variable(tf.zerosLike(value), false)),
      });
      tf.tidy(() => {
        let update: tf.Tensor = gradient;
        if (this.adapt(name)) {
          if (this.weightDecay > 0) update = tf.add(update, tf.mul(value, this.weightDecay));
          const wNorm = tf.norm(value);
          const uNorm = tf.norm(update);
          const usable = tf.logicalAnd(tf.greater(wNorm, 0), tf.greater(uNorm, 0));
          const lr = tf.scalar(this.learningRate);
          const rate = tf.where(usable, tf.minimum(tf.div(tf.mul(wNorm, this.eta), tf.maximum(uNorm, 1e-30)), lr), lr);
          update = tf.mul(update, rate);
        } else {
          update = tf.mul(update, this.learningRate);
        }
        const velocity = tf.add(tf.mul(slot.variable, this.momentum), update);
        slot.variable.assign(velocity);
        value.assign(tf.sub(value, velocity));
      });
    });
    this.incrementIterations();
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const slots = this.slots.filter((s): s is { originalName: string; variable: tf.Variable } => s !== undefined);
    return [await this.saveIterations(), ...slots.map((s) => ({ name: s.originalName, tensor: s.variable }))];
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    tf.dispose(this.slots.filter((s) => s).map((s) => s!.variable));
    this.slots = rest.map((w) => ({ originalName: w.name, variable: tf.variable(w.tensor, false) }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, momentum: this.momentum, weightDecay: this.weightDecay, eta: this.eta };
  }

  override dispose(): void {
    super.dispose();
    tf.dispose(this.slots.filter((s) => s).map((s) => s!.variable));
    this.slots = [];
  }
}
