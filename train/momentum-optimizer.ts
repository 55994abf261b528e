/**
 * tfjs's SGD with momentum (no Nesterov), each variable's update in one kernel call
 * (`momentumStep`) where tfjs's `applyGradients` makes four: the same values, the same slots
 * (`<name>/momentum`, so checkpoints and `setWeights` are tfjs's), fewer dispatches. Where the
 * fused kernel does not run (another backend), tfjs's own `applyGradients` does.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedUpdatesHere, momentumStep } from '../models/kernels/update-kernels.js';

/** The field of tfjs's MomentumOptimizer its `applyGradients` keeps the slots in (private in its types). */
interface MomentumSlots {
  accumulations: Array<{ originalName: string; variable: tf.Variable } | undefined>;
}

export class FusedMomentumOptimizer extends tf.MomentumOptimizer {
  /** The momentum as tfjs's update reads it: its scalar `m`, fixed at construction (`setMomentum` does not change it). */
  readonly #m: number;

  constructor(learningRate: number, momentum: number) {
    super(learningRate, momentum);
    this.#m = momentum;
  }

  override applyGradients(variableGradients: Parameters<tf.MomentumOptimizer['applyGradients']>[0]): void {
    if (!fusedUpdatesHere()) {
      super.applyGradients(variableGradients);
      return;
    }
    const slots = this as unknown as MomentumSlots;
    const names = Array.isArray(variableGradients) ? variableGradients.map((g) => g.name) : Object.keys(variableGradients);
    const c = -this.learningRate; // SGD's scalar `c`, which tfjs's ops multiply by, rounded to float32 as it is
    names.forEach((name, i) => {
      const value = tf.engine().registeredVariables[name] as tf.Variable;
      // created as tfjs creates it, at the index tfjs uses, so getWeights and setWeights stay its own
      slots.accumulations[i] ??= {
        originalName: `${name}/momentum`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      };
      const accumulation = slots.accumulations[i]!.variable;
      const gradient = Array.isArray(variableGradients) ? variableGradients[i]?.tensor : variableGradients[name];
      if (gradient === undefined || gradient === null) return; // a variable the loss does not reach
      const [newValue, newAccumulation] = momentumStep(value, accumulation, gradient, this.#m, c);
      accumulation.assign(newAccumulation);
      value.assign(newValue);
      tf.dispose([newValue, newAccumulation]);
    });
    this.incrementIterations();
  }
}
