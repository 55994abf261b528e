/**
 * How a model's weights are first drawn (`train --init`). Measured, with the figures, in
 * docs/methods.md ("Weight draws"):
 * - `densestream`, the default: convolutions He-normal on fan_in, `N(0, 2/(k²·C_in))`; MLP heads
 *   He-uniform, U(±√(6/fan_in)), with zero biases.
 * - `reference`: as the PyTorch code the methods come from draws them: convolutions He-normal on
 *   fan_out as torchvision's ResNet, `N(0, 2/(k²·C_out))`, and heads as `nn.Linear`'s default,
 *   weights and biases U(±1/√fan_in). It matches the PyTorch twin on Fashion-MNIST at equal
 *   seconds, and costs the scenes' dense mIoU, which is why it is not the default.
 * The ViT draws as timm does under either (truncated normal, σ = 0.02).
 */
export const WEIGHT_INITS = ['densestream', 'reference'] as const;
export type WeightInit = (typeof WEIGHT_INITS)[number];

/** The standard deviation of a `k×k` convolution's normal draw: He on fan_in, or on fan_out for `reference`. */
export const convStd = (k: number, inC: number, outC: number, init: WeightInit): number =>
  Math.sqrt(2 / (k * k * (init === 'reference' ? outC : inC)));

/** The bound of a head layer's uniform draw: He-uniform √(6/in), or `nn.Linear`'s 1/√in for `reference`, which draws its biases from it too. */
export const linearBound = (inDim: number, init: WeightInit): number =>
  init === 'reference' ? 1 / Math.sqrt(inDim) : Math.sqrt(6 / inDim);
