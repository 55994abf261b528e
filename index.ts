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
  type WasmKernelBuild,
} from './models/backend.js';
export {
  conv2dFilterGradient,
  conv2dInputGradient,
  convGeometry,
  depthwiseConv2dFilterGradient,
  depthwiseConv2dInputGradient,
  installFastConvGradients,
  type ConvGeometry,
  type Conv2DAttrs,
} from './models/conv-gradients.js';
export { defaultWasmThreads, registerThreadedWasm, wasmThreadCount } from './models/wasm-threads.js';
export { checkWasmThreads } from './models/backend-choice.js';
export * from './core/index.js';
export { SampleBudget } from './operators/sample-budget.js';
export { fromSource } from './operators/from-source.js';
export { orderedMergeMap } from './operators/ordered-merge-map.js';
export { decode, decodeImage, type DecodeOptions } from './operators/decode.js';
export { multiView, type MultiViewOptions } from './operators/multi-view.js';
export { AUGMENT_PATHS, AUGMENT_CHOICES, type AugmentPath, type AugmentChoice } from './operators/augment-path.js';
export { colourTransform, planView, type ViewFallbackStage } from './operators/view-plan.js';
export { augmentViews, type Normalisation } from './operators/augment-views.js';
export { stackSources } from './operators/view-sources.js';
export { cutPlannedViews, type CutPlannedViewsOptions } from './operators/cut-planned-views.js';
export { chooseAugmentPath, type AugmentDecision, type AugmentProbe } from './operators/augment-choice.js';
export { viewWeights, axisWeights, blurTaps } from './operators/resample-weights.js';
export {
  presetViews,
  withAttentionView,
  withMinForeground,
  HARL_MIN_FOREGROUND,
  parsePreset,
  checkViewConfigs,
  PRESETS,
  type ViewConfig,
  type ColorJitter,
  type PresetName,
} from './operators/augment-presets.js';
export {
  viewCorrespondence,
  cellBoxes,
  randomResizedCropBox,
  foregroundCropBox,
  FOREGROUND_CROP_TRIES,
  type ViewPlacement,
} from './operators/view-geometry.js';
export { cutPlane } from './operators/cut-plane.js';
export { batch, IMAGENET_MEAN, IMAGENET_STD, type BatchOptions } from './operators/batch.js';
export { scenesSource, renderScene, SCENE_CLASSES, type ScenesOptions } from './datasets/scenes.js';
export { imageFolderSource, IMAGE_EXTENSIONS } from './datasets/image-folder.js';
export { tarShardsSource, shardsOfHost, type TarOptions, type MissingShardPolicy } from './datasets/tar-shards.js';
export { expandShardPattern, type ShardLocation } from './datasets/shard-list.js';
export { shardBytes, ShardReadError, DEFAULT_RETRY_POLICY, type RetryPolicy } from './datasets/shard-bytes.js';
export { httpRangeFetcher, s3RangeFetcher, FetchError, type RangeFetcher, type S3Settings } from './datasets/range-fetch.js';
export { ShardCache, type ShardCacheOptions } from './datasets/shard-cache.js';
export { fashionMnistSource, parseIdx, FASHION_MNIST_DIR, FASHION_MNIST_CLASSES } from './datasets/fashion-mnist.js';
export {
  epochOrder,
  parseShard,
  readSamples,
  isRandomAccess,
  type EpochOptions,
  type RandomAccessSource,
  type Shard,
  type Source,
  type StreamSource,
} from './datasets/source.js';
export { openSkipLog, skipSummary, type SkipLog } from './sinks/skip-log.js';
export { openSource, SOURCE_KINDS, type SourceOptions } from './pipelines/data-source.js';
export {
  saliencyMap,
  mapSize,
  saliencySizeFor,
  SALIENCY_METHODS,
  SALIENCY_SIZE,
  type SaliencyMethod,
  type SaliencyOptions,
} from './operators/saliency.js';
export { attentionMap, saliencyAttention, type AttentionSource } from './operators/attention-map.js';
export {
  foregroundMask,
  maskFromAttention,
  kmeansMask,
  cleanMask,
  otsuThreshold,
  isUsableMap,
  MASK_METHODS,
  type MaskMethod,
  type ForegroundMaskOptions,
} from './operators/foreground-mask.js';
export { attentionBox, attentionCropBox, type AttentionCropOptions } from './operators/attention-crop.js';
export { createResNet, checkResNetConfig } from './models/resnet.js';
export { batchNormRelu, batchNormTraining, scaleCentred, type BatchNormResult } from './models/batch-norm.js';
export { createMlp, type Mlp } from './models/heads.js';
export { WEIGHT_INITS, type WeightInit } from './models/weight-init.js';
export { saveVariables, loadVariables } from './models/weights-io.js';
export { readWeightsMeta } from './models/weights-manifest.js';
export { loadModel, readModelArtifacts, type LoadedModel } from './models/load-model.js';
export { openAttentionSource, modelAttention } from './pipelines/attention-source.js';
export {
  infoNCE,
  denseInfoNCE,
  argmaxCorrespondence,
  pixelNTXent,
  maskedAveragePool,
  rankDistillation,
  alignLoss,
  l2Normalize,
} from './methods/losses.js';
export { createViT, checkViTConfig, type ViTEncoder } from './models/vit.js';
export { createEncoder } from './models/encoders.js';
export {
  encoderPreset,
  encoderStride,
  ENCODER_NAMES,
  RESNET_PRESETS,
  VIT_PRESETS,
  type Encoder,
  type EncoderConfig,
  type EncoderName,
  type EncoderOutput,
  type ResNetConfig,
  type ViTConfig,
} from './models/encoder-spec.js';
export { featureKmeansMask } from './operators/foreground-mask.js';
export { geometricMatch } from './operators/view-geometry.js';
export { centreSquareView, wholeImageView } from './operators/augment-presets.js';
export { decodeViews, type DecodeViewsOptions } from './operators/decode-views.js';
export * from './positives/index.js';
export { parquetViewsSource, type PrecomputedViews } from './datasets/parquet-views.js';
export { createMocoV2 } from './methods/mocov2.js';
export { createDenseCL, type DenseclOptions } from './methods/densecl.js';
export { createHapicl } from './methods/hapicl.js';
export { createSoftRank, type SoftRankOptions } from './methods/softrank.js';
export { SOFTRANK_RELATIONS, type SoftRankRelation } from './methods/softrank-relation.js';
export type { Method } from './methods/method.js';
export { trainLoop, type TrainerOptions, type TrainResult } from './train/trainer.js';
export type { TrainerHook, StepEvent, RunStart, MetricsRecord } from './core/trainer-hook.js';
export { LarsOptimizer, type LarsOptions } from './train/lars.js';
export { HEAP_GROWING_PERCENT, widenHeapGrowth } from './train/heap-growth.js';
export { openTableFile, type TableFile, type WrittenFile } from './sinks/table-file.js';
export { TABLE_FORMATS, PARQUET_CODECS, type TableFormat, type ParquetCodec } from './sinks/table-formats.js';
export {
  featuresSchema,
  featureCellsSchema,
  masksSchema,
  viewsSchema,
  tableOf,
  vectorColumn,
  SCHEMA_KEY,
  SCHEMA_VERSION,
  type FeatureShape,
} from './sinks/schemas.js';
export { readManifest, manifestName, type Manifest, type ManifestPart } from './sinks/manifest.js';
export { runExport } from './pipelines/export.js';
export { parseExportConfig, EXPORT_COMMAND, type ExportConfig } from './pipelines/export-options.js';
export { runPrecompute } from './pipelines/precompute.js';
export { parsePrecomputeConfig, PRECOMPUTE_COMMAND, type PrecomputeConfig } from './pipelines/precompute-options.js';
export { runTraining, type RunOptions, type TrainingResult } from './pipelines/train.js';
export { trainBatches } from './pipelines/train-batches.js';
export { parseTrainConfig } from './pipelines/train-options.js';
export { TRAIN_COMMAND, type TrainConfig } from './pipelines/train-schema.js';
export { encoderAttention, openEncoderAttention } from './pipelines/encoder-attention.js';
export { runReport, metricsCharts } from './pipelines/report.js';
export { parseReportConfig, REPORT_COMMAND, type ReportConfig } from './pipelines/report-options.js';
export { runEvaluation, loadLabelledImages } from './pipelines/evaluate.js';
export { saveEvaluation, readEvaluations, evaluationLine, type SavedEvaluations } from './pipelines/eval-file.js';
export { embedImages, type EvalResults, type Evaluation, type Features } from './pipelines/eval-protocols.js';
export { parseEvalConfig, EVAL_COMMAND, PROTOCOLS, type EvalConfig, type Protocol } from './pipelines/eval-options.js';
export {
  fitLinearProbe,
  fitDenseProbe,
  predictLinear,
  predictDense,
  type LinearClassifier,
  type ProbeOptions,
} from './train/linear-probe.js';
export { ConfusionMatrix, maskIoU } from './train/segmentation-metrics.js';
export { readWholeImages, type LabelledImages } from './train/whole-images.js';
