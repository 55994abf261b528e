/**
 * The step's weight updates in one kernel call each (kernels.c: `ema_values`, `sgd_momentum`):
 * the momentum branch's `θ_k ← m·θ_k + (1 − m)·θ_q`, the batch-norm running statistics and SGD
 * with momentum, which tfjs's ops run as three, three and four calls a variable: MoCo v2's step at
 * the twin's task made 478 kernel calls, and makes 251 with all three fused. The same roundings as
 * the ops (a product, then a sum, with contraction off in the C), so a run's values do not change.
 */
import * as tf from '@tensorflow/tfjs';
import { active, floatBits, offset, PARALLEL_MIN, wasmKernelThreads } from './kernel-registry.js';

const EMA_KERNEL = 'DensestreamEma';
const SGD_MOMENTUM_KERNEL = 'DensestreamSgdMomentum';

/** Inputs of one shape, all float32. */
function sameFloat32(tensors: readonly tf.TensorInfo[], what: string): void {
  const first = tensors[0]!;
  if (tensors.some((t) => t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, first.shape)))
    throw new Error(`wasm kernels: ${what} takes float32 tensors of one shape`);
}

const emaKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { target, source } = inputs as { target: tf.TensorInfo; source: tf.TensorInfo };
  const { a, b } = attrs as unknown as { a: number; b: number };
  sameFloat32([target, source], 'the EMA update');
  const out = k.backend.makeOutput([...target.shape], 'float32');
  const n = tf.util.sizeFromShape(target.shape);
  // each scale as tfjs makes the scalar of `tf.mul(x, s)`: in double, then rounded to float32
  if (n > 0)
    k.pool.run('ema_values', [offset(k, target), offset(k, source), offset(k, out), n, floatBits(a), floatBits(b)], n >= PARALLEL_MIN);
  return out;
};

const sgdMomentumKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { value, accumulation, gradient } = inputs as { value: tf.TensorInfo; accumulation: tf.TensorInfo; gradient: tf.TensorInfo };
  const { momentum, scale } = attrs as unknown as { momentum: number; scale: number };
  sameFloat32([value, accumulation, gradient], 'the momentum update');
  const [valueOut, accumulationOut] = [
    k.backend.makeOutput([...value.shape], 'float32'),
    k.backend.makeOutput([...value.shape], 'float32'),
  ];
  const n = tf.util.sizeFromShape(value.shape);
  if (n > 0)
    k.pool.run(
      'sgd_momentum',
      [
        offset(k, value),
        offset(k, accumulation),
        offset(k, gradient),
        offset(k, valueOut),
        offset(k, accumulationOut),
        n,
        floatBits(momentum),
        floatBits(scale),
      ],
      n >= PARALLEL_MIN,
    );
  return [valueOut, accumulationOut];
};

/** Registers the two kernels on wasm (once; `installWasmKernels`). */
export function registerUpdateKernels(): void {
  tf.registerKernel({ kernelName: EMA_KERNEL, backendName: 'wasm', kernelFunc: emaKernel });
  tf.registerKernel({ kernelName: SGD_MOMENTUM_KERNEL, backendName: 'wasm', kernelFunc: sgdMomentumKernel });
}

/** Whether the fused updates run on the active backend: wasm with densestream's kernels. */
export function fusedUpdatesHere(): boolean {
  return wasmKernelThreads() > 0;
}

/** `m·target + (1 − m)·source`, as `tf.add(tf.mul(target, m), tf.mul(source, 1 − m))` computes it (those ops elsewhere). */
export function emaOf(target: tf.Tensor, source: tf.Tensor, m: number): tf.Tensor {
  return blendOf(target, source, m, 1 - m);
}

/**
 * `a·target + b·source`, as `tf.add(tf.mul(target, a), tf.mul(source, b))` computes it (those ops
 * elsewhere): `emaOf` with a scale of its own on the source, as the running variance's
 * `(1 − m)·n/(n − 1)`.
 */
export function blendOf(target: tf.Tensor, source: tf.Tensor, a: number, b: number): tf.Tensor {
  if (target.dtype !== 'float32' || !fusedUpdatesHere()) return tf.tidy(() => tf.add(tf.mul(target, a), tf.mul(source, b)));
  return tf.engine().runKernel(EMA_KERNEL, { target, source }, { a, b } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * One step of SGD with momentum, as tfjs's MomentumOptimizer computes it: the accumulation
 * `a' = m·a + g` and the value `v' = c·a' + v` (`c` = −learning rate). Returns `[v', a']`. The
 * kernel only: where {@link fusedUpdatesHere} is false the optimizer runs tfjs's own update.
 */
export function momentumStep(value: tf.Tensor, accumulation: tf.Tensor, gradient: tf.Tensor, m: number, c: number): [tf.Tensor, tf.Tensor] {
  return tf.engine().runKernel(SGD_MOMENTUM_KERNEL, { value, accumulation, gradient }, {
    momentum: m,
    scale: c,
  } as unknown as tf.NamedAttrMap) as unknown as [tf.Tensor, tf.Tensor];
}
