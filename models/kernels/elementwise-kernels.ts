/**
 * Add, Sub, Multiply, RealDiv and Square of float32 operands on the wasm backend, where tfjs's kernels
 * are slow for the shapes a training step gives them (registered by `installWasmKernels`):
 * - small operands of one shape, or a small one and a scalar, on the calling thread
 *   (`binary_rows`): the optimiser's, the momentum update's and the running statistics'
 *   hundreds of small products and sums a step, where XNNPACK's set-up per call dominates;
 * - an operand repeated along one block of axes (`binary_middle`): `[C]` by `[N, H, W, C]`,
 *   `[N, D]` by `[N, 1]` (every L2 normalisation), `[B, H, W, C]` by `[B, 1, 1, C]`, which tfjs's
 *   kernels run through a general broadcasting loop, an index computation per value.
 * Any other shape goes to the kernel each replaces.
 */
import * as tf from '@tensorflow/tfjs';
import { offset, override, PARALLEL_MIN } from './kernel-registry.js';

/** The kernels taken over, in binary_rows' and binary_middle's op order. */
const BINARY_OPS = [tf.Add, tf.Sub, tf.Multiply, tf.RealDiv] as const;

const SCALAR_MAX = 1024;

function overrideBinary(kernelName: string, op: number): void {
  override(kernelName, ({ inputs }, k) => {
    const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
    const small = smallElementwise(a, b);
    if (small) {
      // On this thread, no wake-up. Measured per call, warm, against tfjs's (XNNPACK's):
      // [1 000] + [1 000] 2.6 µs against 9.3, [30 000] 15 against 22, [32] × scalar 5.2 against 8.5.
      const [full, row, swap] = small;
      const out = k.backend.makeOutput([...full.shape], 'float32');
      const n = tf.util.sizeFromShape(full.shape);
      if (n > 0) k.pool.run('binary_rows', [offset(k, full), offset(k, row), offset(k, out), ...small[3], op, swap], false);
      return out;
    }
    const aWhole = broadcastSplit(b.shape, a.shape);
    const split = aWhole ?? broadcastSplit(a.shape, b.shape);
    if (!split) return undefined;
    const [full, part] = aWhole ? [a, b] : [b, a];
    const out = k.backend.makeOutput([...full.shape], 'float32');
    const n = tf.util.sizeFromShape(full.shape);
    if (n > 0)
      k.pool.run('binary_middle', [offset(k, full), offset(k, part), offset(k, out), ...split, op, aWhole ? 0 : 1], n >= PARALLEL_MIN);
    return out;
  });
}

/**
 * For an elementwise op below PARALLEL_MIN values of two same-shape operands, or of one with at
 * most SCALAR_MAX values and a scalar: [full, other, swap, [rows, cols]] as binary_rows takes
 * them (same shape: one row of n; a scalar: n rows of one), else undefined.
 */
function smallElementwise(a: tf.TensorInfo, b: tf.TensorInfo): [tf.TensorInfo, tf.TensorInfo, number, [number, number]] | undefined {
  const [na, nb] = [tf.util.sizeFromShape(a.shape), tf.util.sizeFromShape(b.shape)];
  if (Math.max(na, nb) >= PARALLEL_MIN) return undefined;
  if (tf.util.arraysEqual(a.shape, b.shape)) return [a, b, 0, [1, na]];
  // A scalar of any rank no higher than the other's (a higher one would change the output's
  // rank), against at most SCALAR_MAX values: binary_rows takes it as n rows of one value, a
  // scalar loop, which XNNPACK's vector loop overtakes above about a thousand (measured).
  if (Math.max(na, nb) > SCALAR_MAX) return undefined;
  if (nb === 1 && b.shape.length <= a.shape.length) return [a, b, 0, [na, 1]];
  if (na === 1 && a.shape.length <= b.shape.length) return [b, a, 1, [nb, 1]];
  return undefined;
}

/**
 * `[outer, mid, inner]` when `part` broadcasts against `full` by repeating along one block of
 * axes: `part` is `full` with that block set to 1, read as `[outer, 1, inner]` against `[outer,
 * mid, inner]`. `[C]` against `[N, H, W, C]`: [1, N·H·W, C]; `[N, 1]` against `[N, D]`:
 * [N, D, 1]; `[B, 1, 1, C]` against `[B, H, W, C]`: [B, H·W, C]. Undefined for any other pair,
 * and for a `part` that is one value (outer and inner both 1: a scalar, smallElementwise's or
 * the engine's).
 */
function broadcastSplit(part: readonly number[], full: readonly number[]): [number, number, number] | undefined {
  if (part.length > full.length) return undefined;
  const padded = [...new Array<number>(full.length - part.length).fill(1), ...part];
  // Each axis: kept (equal sizes), repeated (1 against more), or neither (not a broadcast of
  // part into full). Axes of size 1 in both change no index and are left out.
  const axes = full.map((d, i) => ({ d, kind: padded[i] === d ? (d === 1 ? '' : 'k') : padded[i] === 1 ? 'r' : 'x' }));
  if (axes.some((x) => x.kind === 'x')) return undefined;
  const used = axes.filter((x) => x.kind !== '');
  const form = used
    .map((x) => x.kind)
    .join('')
    .match(/^(k*)(r+)(k*)$/);
  if (!form) return undefined;
  const [, before = '', repeated = ''] = form;
  const size = (from: number, to: number) => used.slice(from, to).reduce((p, x) => p * x.d, 1);
  const [outer, mid, inner] = [
    size(0, before.length),
    size(before.length, before.length + repeated.length),
    size(before.length + repeated.length, used.length),
  ];
  return outer === 1 && inner === 1 ? undefined : [outer, mid, inner];
}

/**
 * Square as `x · x`, through Multiply's kernel (ours for small operands, XNNPACK's otherwise).
 * tfjs-backend-wasm's own Square took 0.4 ms for a `[64, 128]` or a `[192, 128]` where `x · x`
 * took 0.03–0.06 (measured side by side). Its callers: the ViT's layer norm and GELU, batch norm
 * off the fused kernel, the align loss and the linear probe's weight decay (L2 normalisation
 * squared its rows too, until it multiplied them itself).
 */
function overrideSquare(): void {
  override(tf.Square, ({ inputs, backend }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    if (x.dtype !== 'float32') return undefined;
    const multiply = tf.getKernel(tf.Multiply, 'wasm');
    return multiply?.kernelFunc({ inputs: { a: x, b: x }, backend, attrs: {} }) as tf.TensorInfo | undefined;
  });
}

/** Registers the overrides on wasm (once, by `installWasmKernels`). */
export function registerElementwiseKernels(): void {
  BINARY_OPS.forEach((kernelName, op) => overrideBinary(kernelName, op));
  overrideSquare();
}
