/**
 * The wasm kernels of a Conv2D input gradient taken phase by phase (`conv-gradients.ts`): the
 * flipped taps each phase convolves with, and the weave of the phases' outputs into the input's
 * grid. Registered by `installWasmKernels`.
 */
import * as tf from '@tensorflow/tfjs';
import { active, offset, PARALLEL_MIN, writeGeometry } from './kernel-registry.js';

/**
 * The phases of a strided convolution's input gradient, inputs `p0 … p(sh·sw−1)` `[B,Hp,Wp,C]`
 * (row phase major), attrs `sh`, `sw`: woven into `[B, Hp·sh, Wp·sw, C]` (`conv-gradients.ts`).
 */
export const INTERLEAVE_KERNEL = 'DensestreamInterleavePhases';
/** The flipped taps of a Conv2D filter, `[th,tw,B,A]` from `[kh,kw,A,B]` (`flippedFilter`). */
export const FLIP_FILTER_KERNEL = 'DensestreamFlipFilter';

const interleaveKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { sh, sw } = attrs as unknown as { sh: number; sw: number };
  const phases = Array.from({ length: sh * sw }, (_, i) => (inputs as Record<string, tf.TensorInfo | undefined>)[`p${i}`]);
  const first = phases[0];
  if (first === undefined || phases.some((t) => t === undefined || t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, first.shape))) {
    throw new Error(`wasm kernels: interleave takes ${sh * sw} float32 phases of one shape`);
  }
  if (sh * sw > 10) throw new Error(`wasm kernels: interleave takes at most 10 phases, got ${sh * sw}`);
  const [batch, ph, pw, c] = first.shape as [number, number, number, number];
  const out = k.backend.makeOutput([batch, ph * sh, pw * sw, c], 'float32');
  if (batch * ph * pw * c === 0) return out;
  const geometry = [batch, ph, pw, c, sh, sw, ...phases.map((t) => offset(k, t!))];
  writeGeometry(k, geometry);
  k.pool.run('interleave_phases', [k.geometry, offset(k, out)], batch * ph * pw * c * sh * sw >= PARALLEL_MIN);
  return out;
};

/** Taps in a conv gradient's order: descending by a fixed step (`axisPhases`), as (first, step, count). */
function tapRun(taps: readonly number[]): [number, number, number] | undefined {
  const first = taps[0];
  if (first === undefined) return undefined;
  const step = taps.length > 1 ? first - taps[1]! : 0;
  return taps.every((t, i) => t === first - step * i) ? [first, step, taps.length] : undefined;
}

const flipFilterKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { filter } = inputs as { filter: tf.TensorInfo };
  const { rows, cols } = attrs as unknown as { rows: number[]; cols: number[] };
  const [kh, kw, a, b] = filter.shape as [number, number, number, number];
  const [r, c] = [tapRun(rows), tapRun(cols)];
  if (filter.dtype !== 'float32' || filter.shape.length !== 4 || !r || !c || [...rows, ...cols].some((t) => t < 0))
    throw new Error('wasm kernels: flip_filter takes a float32 [kh,kw,A,B] filter and taps in a descending run');
  if (rows.some((t) => t >= kh) || cols.some((t) => t >= kw)) throw new Error(`wasm kernels: flip_filter's taps lie outside ${kh}×${kw}`);
  const out = k.backend.makeOutput([rows.length, cols.length, b, a], 'float32');
  if (a * b > 0)
    k.pool.run('flip_filter', [offset(k, filter), offset(k, out), kw, a, b, ...r, ...c], rows.length * cols.length * a * b >= PARALLEL_MIN);
  return out;
};

/**
 * The taps `rows × cols` of a `[kh,kw,A,B]` filter, each one's matrix transposed: `[th,tw,B,A]`, a
 * Conv2D input gradient's filter for one phase (conv-gradients.ts). One kernel call, where the
 * engine's ops would gather, reverse and transpose. Taps as `axisPhases` lists them.
 */
export function flippedFilter(filter: tf.Tensor4D, rows: readonly number[], cols: readonly number[]): tf.Tensor4D {
  return tf
    .engine()
    .runKernel(FLIP_FILTER_KERNEL, { filter }, { rows: [...rows], cols: [...cols] } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

/** The interleave's gradient: phase (a, b) takes every sh-th row from a and every sw-th column from b of dy. */
const interleaveGradient: tf.GradConfig['gradFunc'] = (dy, _saved, attrs) => {
  const g = dy as tf.Tensor4D;
  const { sh, sw } = attrs as unknown as { sh: number; sw: number };
  const [batch, h, w, c] = g.shape;
  return Object.fromEntries(
    Array.from({ length: sh * sw }, (_, i) => {
      const [a, b] = [Math.floor(i / sw), i % sw];
      return [`p${i}`, () => tf.stridedSlice(g, [0, a, b, 0], [batch, h, w, c], [1, sh, sw, 1])];
    }),
  );
};

/** Registers the two kernels, and the weave's gradient, on wasm (once; `installWasmKernels`). */
export function registerPhaseKernels(): void {
  tf.registerKernel({ kernelName: INTERLEAVE_KERNEL, backendName: 'wasm', kernelFunc: interleaveKernel });
  tf.registerGradient({ kernelName: INTERLEAVE_KERNEL, gradFunc: interleaveGradient });
  tf.registerKernel({ kernelName: FLIP_FILTER_KERNEL, backendName: 'wasm', kernelFunc: flipFilterKernel });
}
