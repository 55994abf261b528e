/**
 * Builds the encoder a config describes: a ResNet (`resnet.ts`) or a ViT (`vit.ts`). Named
 * presets for the command line (`slim`, the default; `resnet18`; `vit`, ViT-Tiny: patch 8, dim 192,
 * 4 blocks, 3 heads, whose position embeddings fix it to the view size) live in `encoder-spec.ts`.
 */
import type { Encoder, EncoderConfig } from './encoder-spec.js';
import { createResNet } from './resnet.js';
import { createViT } from './vit.js';
import type { WeightInit } from './weight-init.js';

/** Builds the encoder a config describes, seeded, its variables under `scope`; `init` sets a ResNet's draw (the ViT has one). */
export function createEncoder(config: EncoderConfig, seed = 0, scope = 'encoder', init: WeightInit = 'densestream'): Encoder {
  return config.kind === 'vit' ? createViT(config, seed, scope) : createResNet(config, seed, scope, init);
}
