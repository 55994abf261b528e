/**
 * densestream's library API. Each folder is one role of the pipeline (see DESIGN.md);
 * this file re-exports what a user composes.
 */
export {
  BACKEND_CHOICES,
  parseBackendChoice,
  selectBackend,
  type BackendChoice,
  type BackendOptions,
  type BackendSelection,
} from './models/backend.js';
export {
  conv2dFilterGradient,
  conv2dInputGradient,
  convGeometry,
  installFastConvGradients,
  type ConvGeometry,
  type Conv2DAttrs,
} from './models/conv-gradients.js';
export { checkWasmThreads, defaultWasmThreads, registerThreadedWasm, wasmThreadCount } from './models/wasm-threads.js';
export * from './operators/types/index.js';
export { SampleBudget } from './operators/sample-budget.js';
export { fromSource } from './operators/from-source.js';
export { orderedMergeMap } from './operators/ordered-merge-map.js';
export { decode, decodeImage, type DecodeOptions } from './operators/decode.js';
export { multiView, colourTransform, type MultiViewOptions } from './operators/multi-view.js';
export { presetViews, withAttentionView, parsePreset, checkViewConfigs, PRESETS, type ViewConfig, type ColorJitter, type PresetName } from './operators/augment-presets.js';
export { viewCorrespondence, cellBoxes, randomResizedCropBox, type ViewPlacement } from './operators/view-geometry.js';
export { cutPlane } from './operators/cut-plane.js';
export { batch, IMAGENET_MEAN, IMAGENET_STD, type Batch, type BatchOptions } from './operators/batch.js';
export { scenesSource, renderScene, SCENE_CLASSES, type ScenesOptions } from './datasets/scenes.js';
export { imageFolderSource, IMAGE_EXTENSIONS } from './datasets/image-folder.js';
export { tarShardsSource, expandShardPattern, type TarOptions } from './datasets/tar-shards.js';
export { fashionMnistSource, parseIdx, FASHION_MNIST_DIR, FASHION_MNIST_CLASSES } from './datasets/fashion-mnist.js';
export { epochOrder, parseShard, readSamples, isRandomAccess, type EpochOptions, type RandomAccessSource, type Shard, type Source, type StreamSource } from './datasets/source.js';
export { openSkipLog, skipSummary, type SkipLog } from './sinks/skip-log.js';
export { openSource, SOURCE_KINDS, type SourceOptions } from './pipelines/data-source.js';
export { saliencyMap, mapSize, SALIENCY_METHODS, type SaliencyMethod, type SaliencyOptions } from './operators/saliency.js';
export { attentionMap, saliencyAttention, type AttentionSource } from './operators/attention-map.js';
export { foregroundMask, maskFromAttention, kmeansMask, cleanMask, otsuThreshold, isUsableMap, MASK_METHODS, type MaskMethod, type ForegroundMaskOptions } from './operators/foreground-mask.js';
export { attentionBox, attentionCropBox, type AttentionCropOptions } from './operators/attention-crop.js';
export { createResNet, checkResNetConfig, scaleCentred, RESNET_PRESETS, type Encoder, type EncoderOutput, type ResNetConfig } from './models/resnet.js';
export { createMlp, type Mlp } from './models/heads.js';
export { saveVariables, loadVariables, readWeightsMeta } from './models/weights-io.js';
export { loadModel, readModelArtifacts, type LoadedModel } from './models/load-model.js';
export { openAttentionSource, modelAttention } from './pipelines/attention-source.js';
export { infoNCE, denseInfoNCE, argmaxCorrespondence, pixelNTXent, maskedAveragePool, rankDistillation, alignLoss, l2Normalize } from './methods/losses.js';
