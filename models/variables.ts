import * as tf from '@tensorflow/tfjs';

/**
 * A variable holding `init`'s values, `init` itself freed. `tf.variable(t)` shares `t`'s data
 * but leaves `t` counted in `tf.memory().numTensors` until someone disposes it: without this,
 * every model built would leave its initial values behind.
 */
export function variableFrom(init: tf.Tensor, trainable: boolean, name: string): tf.Variable {
  const v = tf.variable(init, trainable, name);
  init.dispose();
  return v;
}
