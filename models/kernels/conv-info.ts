/** The engine's geometry of one NHWC Conv2D, shared by the kernels that take convolutions over. */
import * as tf from '@tensorflow/tfjs';

/** Padding resolved and output size computed exactly as tfjs does for an NHWC Conv2D. */
export function nhwcConvInfo(
  xShape: readonly number[],
  filterShape: readonly number[],
  attrs: Pick<tf.Conv2DAttrs, 'strides' | 'dilations' | 'pad' | 'dimRoundingMode'>,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}

/** The seven int32 words every convolution kernel's geometry starts with: B, H, W, Ci, Ho, Wo, Co. */
export function convShapeWords(info: tf.backend_util.Conv2DInfo): number[] {
  return [info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.outChannels];
}
