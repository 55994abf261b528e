/**
 * Data-movement kernels for the wasm backend, in JavaScript on its heap: GatherV2, Slice and
 * SplitV of 4-byte elements, copied a contiguous run at a time. Registered by
 * `installWasmKernels`; anything else goes to the kernel each replaces.
 */
import * as tf from '@tensorflow/tfjs';
import { fourByte, offset, override, type Installed, type KernelArgs } from './kernel-registry.js';

/**
 * GatherV2 of 4-byte elements without batch dimensions, `[outer, n, inner]` by `indices` →
 * `[outer, m, inner]`, as row copies. tfjs's wasm kernel walks every element through index
 * arithmetic: DenseCL's gather of 1 024 matched key cells of 128 took 14 ms of a step.
 * An index outside `[0, n)` goes to the engine's kernel, which refuses it with its own message.
 */
function rowGather({ inputs, attrs }: KernelArgs, installed: Installed): tf.TensorInfo | undefined {
  const { x, indices } = inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { axis, batchDims } = attrs as unknown as tf.GatherV2Attrs;
  if (!fourByte(x) || indices.dtype !== 'int32' || batchDims !== 0) return undefined;
  const at = tf.util.parseAxisParam(axis, x.shape)[0]!;
  const n = x.shape[at]!;
  const outer = tf.util.sizeFromShape(x.shape.slice(0, at));
  const inner = tf.util.sizeFromShape(x.shape.slice(at + 1));
  const m = tf.util.sizeFromShape(indices.shape);
  const rows = new Int32Array(installed.memory.buffer, offset(installed, indices), m).slice(); // a copy: makeOutput may move the heap
  if (rows.some((r) => !(r >= 0 && r < n))) return undefined;
  const out = installed.backend.makeOutput([...x.shape.slice(0, at), ...indices.shape, ...x.shape.slice(at + 1)], x.dtype);
  const words = new Int32Array(installed.memory.buffer);
  const from = offset(installed, x) / 4;
  const to = offset(installed, out) / 4;
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < m; i++) {
      const src = from + (o * n + rows[i]!) * inner;
      words.copyWithin(to + (o * m + i) * inner, src, src + inner);
    }
  return out;
}

/**
 * Copies the `size` box at `begin` of x (4-byte elements) into a new output, a contiguous run
 * at a time (the trailing axes a slice takes whole, and the first it cuts). tfjs's wasm Slice
 * copies one element at a time in JavaScript: the `[1024, 1025]` logits' split in DenseCL's
 * InfoNCE gradient took 8 ms.
 */
function copySlice(installed: Installed, x: tf.TensorInfo, begin: readonly number[], size: readonly number[]): tf.TensorInfo {
  const out = installed.backend.makeOutput([...size], x.dtype);
  const total = tf.util.sizeFromShape([...size]);
  if (total === 0) return out;
  const rank = x.shape.length;
  const strides = tf.util.computeStrides([...x.shape]); // rank − 1 entries
  // The run: trailing axes taken whole, then the axis that is cut.
  let axis = rank - 1;
  while (axis > 0 && size[axis] === x.shape[axis]) axis--;
  const run = tf.util.sizeFromShape([...size.slice(axis)]);
  const words = new Int32Array(installed.memory.buffer);
  const from = offset(installed, x) / 4;
  const to = offset(installed, out) / 4;
  const index = new Array<number>(axis).fill(0); // over the axes before the run
  for (let done = 0; done < total; done += run) {
    let src = from;
    for (let a = 0; a < rank; a++) src += ((a < axis ? index[a]! : 0) + begin[a]!) * (a < rank - 1 ? strides[a]! : 1);
    words.copyWithin(to + done, src, src + run);
    for (let a = axis - 1; a >= 0; a--) {
      if (++index[a]! < size[a]!) break;
      index[a] = 0;
    }
  }
  return out;
}

function fastSlice({ inputs, attrs }: KernelArgs, installed: Installed): tf.TensorInfo | undefined {
  const { x } = inputs as { x: tf.TensorInfo };
  if (!fourByte(x) || x.shape.length === 0) return undefined;
  const { begin, size } = attrs as unknown as tf.SliceAttrs;
  const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  return copySlice(installed, x, b!, s!);
}

/** SplitV as one fastSlice a piece (tfjs's wasm SplitV calls its own Slice, past any override). */
function fastSplit({ inputs, attrs }: KernelArgs, installed: Installed): tf.TensorInfo[] | undefined {
  const { x } = inputs as { x: tf.TensorInfo };
  if (!fourByte(x) || x.shape.length === 0) return undefined;
  const { numOrSizeSplits, axis } = attrs as unknown as tf.SplitVAttrs;
  const at = tf.util.parseAxisParam(axis, x.shape)[0]!;
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, at);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((piece) => {
    const size = [...x.shape];
    size[at] = piece;
    const out = copySlice(installed, x, begin, size);
    begin[at]! += piece;
    return out;
  });
}

/** Puts these kernels in front of wasm's GatherV2, Slice and SplitV. */
export function registerCopyKernels(): void {
  override(tf.GatherV2, rowGather);
  override(tf.Slice, fastSlice);
  override(tf.SplitV, fastSplit);
}
