/**
 * The encoders a method can train, by config kind: ResNets (`resnet.ts`) and ViTs (`vit.ts`).
 * Named presets for the command line: `slim` (default), `resnet18`, and `vit` (ViT-Tiny: patch 8,
 * dim 192, 4 blocks, 3 heads), whose position embeddings fix it to the view size.
 */
import { createResNet, RESNET_PRESETS, type Encoder, type ResNetConfig } from './resnet.js';
import { createViT, VIT_PRESETS, type ViTConfig } from './vit.js';

export type EncoderConfig = ResNetConfig | ViTConfig;
export const ENCODER_NAMES = ['slim', 'resnet18', 'vit'] as const;
export type EncoderName = (typeof ENCODER_NAMES)[number];

/** The config of a named encoder for views of `size` pixels. */
export function encoderPreset(name: EncoderName, size: number): EncoderConfig {
  return name === 'vit' ? { ...VIT_PRESETS.tiny, imageSize: size } : RESNET_PRESETS[name];
}

/** Builds the encoder a config describes, seeded, its variables under `scope`. */
export function createEncoder(config: EncoderConfig, seed = 0, scope = 'encoder'): Encoder {
  return config.kind === 'vit' ? createViT(config, seed, scope) : createResNet(config, seed, scope);
}

/** Input pixels per cell of the dense grid. */
export function encoderStride(config: EncoderConfig): number {
  return config.kind === 'vit' ? config.patch : config.stemStride * 2 ** (config.blocks.length - 1);
}
