/**
 * What an encoder is, without building one: the `Encoder` interface every method trains, the
 * configs of its two kinds (ResNet, ViT), the named presets of the command line and the stride of
 * the dense grid. It imports no tfjs at run time, so option parsing can use it without loading
 * the engine; `encoders.ts` builds an encoder from a config.
 */
import type * as tf from '@tensorflow/tfjs';

export interface ResNetConfig {
  kind: 'resnet';
  /** Channels of the first stage; each later stage doubles them. */
  width: number;
  /** Basic blocks per stage; the first stage keeps the stem's resolution, each later one halves it. */
  blocks: number[];
  /** Stride of the 3×3 stem convolution (1 for CIFAR-style 32 px inputs, 2 to halve the work at 64 px). */
  stemStride: 1 | 2;
}

/** Presets: `slim` (default, trains in minutes here) and `resnet18` (CIFAR-style ResNet-18). */
export const RESNET_PRESETS = {
  slim: { kind: 'resnet', width: 32, blocks: [1, 1, 1], stemStride: 2 },
  resnet18: { kind: 'resnet', width: 64, blocks: [2, 2, 2, 2], stemStride: 1 },
} as const satisfies Record<string, ResNetConfig>;

export type EncoderOutput = {
  /** The last feature map `[B, S, S, C]`. */
  dense: tf.Tensor4D;
  /** Its global average `[B, C]`. */
  pooled: tf.Tensor2D;
};

export interface Encoder {
  /** What built it: a ResNet or a ViT (`models/encoders.ts` makes either). */
  readonly config: EncoderConfig;
  /** Channels `C` of the outputs. */
  readonly channels: number;
  /** Input pixels per dense cell along each axis. */
  readonly stride: number;
  /** Weights the optimiser updates. */
  readonly trainable: tf.Variable[];
  /** Batch-norm running statistics: saved and restored, never differentiated. */
  readonly state: tf.Variable[];
  /** Every variable by its name within the encoder (without the scope): what checkpoints store. */
  readonly weights: Record<string, tf.Variable>;
  apply(images: tf.Tensor4D, options: { training: boolean }): EncoderOutput;
  dispose(): void;
}

export interface ViTConfig {
  kind: 'vit';
  /** Pixels per patch side: the patch embedding's kernel and stride. */
  patch: 4 | 8;
  /** Token width `D` (ViT-Tiny: 192). */
  dim: number;
  /** Transformer blocks. */
  depth: number;
  /** Attention heads; must divide `dim` (ViT-Tiny: 3). */
  heads: number;
  /** MLP hidden width as a multiple of `dim` (default 4). */
  mlpRatio?: number;
  /** Input side in pixels (square): fixes the number of position embeddings. */
  imageSize: number;
}

/** Presets: `tiny` (ViT-Tiny's width and heads, 4 blocks, 8 px patches at 64 px: an 8×8 grid). */
export const VIT_PRESETS = {
  tiny: { kind: 'vit', patch: 8, dim: 192, depth: 4, heads: 3, imageSize: 64 },
} as const satisfies Record<string, ViTConfig>;

export type EncoderConfig = ResNetConfig | ViTConfig;
export const ENCODER_NAMES = ['slim', 'resnet18', 'vit'] as const;
export type EncoderName = (typeof ENCODER_NAMES)[number];

/** The config of a named encoder for views of `size` pixels. */
export function encoderPreset(name: EncoderName, size: number): EncoderConfig {
  return name === 'vit' ? { ...VIT_PRESETS.tiny, imageSize: size } : RESNET_PRESETS[name];
}

/** Channels `C` of the encoder's outputs: a ResNet's last stage (each stage doubles the first's), a ViT's token width. */
export function encoderChannels(config: EncoderConfig): number {
  return config.kind === 'vit' ? config.dim : config.width * 2 ** (config.blocks.length - 1);
}

/** Input pixels per cell of the dense grid. */
export function encoderStride(config: EncoderConfig): number {
  return config.kind === 'vit' ? config.patch : config.stemStride * 2 ** (config.blocks.length - 1);
}

/** Cells on a side of the dense grid of a `size²` input: each strided layer pads, so a part cell counts (a ViT's size is a multiple of its patch). */
export function encoderGridSide(config: EncoderConfig, size: number): number {
  return Math.ceil(size / encoderStride(config));
}
