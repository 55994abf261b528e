#!/usr/bin/env node
/**
 * The `densestream` command line. Commands are added as their jobs land; each one does its
 * whole job or is not listed.
 */
import { BACKEND_CHOICES, defaultWasmThreads } from '../models/backend-choice.js';
import { ConfigError } from './options.js';
import { packageJson } from './package-json.js';


const HELP = `densestream — streaming self-supervised dense representation learning

Usage: densestream <command> [options]

Commands:
  backend    load the compute backend and report which one this machine gets, and why
             --backend ${BACKEND_CHOICES.join('|')}  (default auto: tfjs-node-gpu, tfjs-node, wasm, cpu)
             --threads N                 wasm compute threads, 1–8 (default: cores, here ${defaultWasmThreads()})
  train      self-supervised training; with no options: densecl on scenes, 200 steps (7–18 min on 2 cores, measured)
             --data SOURCE (scenes; parquet:DIR for precomputed views)  --epochs E (instead of --steps)  --method densecl|mocov2|hapicl|softrank  --steps N (200)  --batch B (32)  --size PX (64)
             --encoder slim|resnet18|vit (ViT-Tiny, patch 8)  --preset mocov2|byol|multicrop  --masks saliency|kmeans|gt|encoder (hapicl)
             --min-foreground F (hapicl: each random crop keeps ≥ F of its area on the mask, HARL; 0.2, 0 = plain crops)
             softrank (soft-ranking distillation with clustering positives; --batch counts anchors and positives, even ≥ 4;
             once a clustering exists an anchor's positive is another image of its cluster, a new anchor's by its nearest centroid
             (the anchor itself when none is left: a singleton cluster, a failed read, on a stream none in the reservoir); on tar: shards,
             a stream, the positive comes from the recent samples of the anchor's cluster, and --resume is not exact):
             --recluster-every K (50 steps)  --clusters k (min(100, bank/4))  --bank-size N (min(data size, 65536))  --bank-precision float32|float16
             --negatives K (0; per pair, K bank embeddings from other clusters join the ranking candidates)
             --reservoir N (tar: only; 1024 recent decoded samples positives are drawn from, at most 65536)
             --match feature|geometric (densecl)  --attention-view (one view keeps the main object)
             --attention boundary|frequency-tuned|model:PATH|encoder:RUN|encoder (the attention view's and saliency masks' map;
             encoder: the one being trained, refreshed every --attention-refresh K (50) steps)  --align-weight λ (0; the align loss)
             --backend auto|tensorflow|webgpu|wasm|cpu  --threads N
             --augment auto|cpu|backend (where view pixels are cut: per image with sharp, or per batch by tensor ops on the backend;
             auto measures both on the first images and takes the cheaper; images of mixed sizes go to the CPU)
             --out DIR (runs/METHOD; a folder holding a run is refused: --resume continues it, --resume --steps N extends it, --overwrite replaces it)
             --seed S  --optimizer sgd|adamw|lars  --lr (0.05 sgd, 1e-3 adamw, 0.3·B/256 lars)  --warmup (20)
             --weight-decay (1e-4)  --queue (4096)
             --log-every (10)  --checkpoint-every (100)  --config FILE.json (the same keys; flags win)
             --knn-every K (100 steps; 0 off)  --knn-size N (1000)  --knn-data SOURCE (scenes: --data's; fashion-mnist: its test split): kNN accuracy logged as knn
  precompute  training views (and foreground masks) cut once into Parquet shards: train --data parquet:DIR uses them
             --data SOURCE (required; all of it: scenes is 20 000 images)  --out DIR (required)  --preset mocov2|byol|multicrop  --size PX (64)
             --views N (the preset's count × epochs)  --masks none|saliency|kmeans|gt (saliency)  --min-foreground F (0.2 with masks)  --attention-view  --attention SOURCE
             --image-format png|jpeg|webp (png: lossless)  --format parquet|arrow  --codec  --shard i/n  --rows-per-file R (500)
             --augment auto|cpu|backend (as train's)
  export     dense features of a trained encoder to Parquet / Arrow, resumable, shardable
             --data SOURCE (required; all of it is exported: scenes is 20 000 images, scenes:SIZE:COUNT fewer; dir:PATH, tar:PATTERN, fashion-mnist[-test])  --out DIR (required)
             --checkpoint RUN (a train --out; without it: a random-init --encoder slim|resnet18|vit, the baseline)
             --format parquet|arrow  --dense grid|cells (a row per image, or per grid cell)  --codec lz4|zstd|snappy|none (lz4)
             --shard i/n  --rows-per-file R (1000)  --size PX (the checkpoint's)  --batch B (32)  --quiet
  eval       frozen-feature evaluation of a train run (or --checkpoint random), merged into RUN/eval.json
             --checkpoint RUN|random (required; random: a seeded random-init --encoder slim|resnet18|vit, the baseline)
             --protocol knn|linear|dense|masks|all (all)  --data scenes[:SIZE]|fashion-mnist[:DIR]|dir:PATH (scenes; held out: scenes of seed 1 /
             the test file / 20% of a folder with one sub-folder per class, by a hash of --seed and each file's path)  --train N (5000)  --test N (1000)  --dense-train N (1000)  --masks encoder|saliency|kmeans (encoder)
             --epochs E (probe epochs: 40 linear, 15 dense)  --size PX (the checkpoint's)  --out DIR (the run)  --seed S  --quiet
  preview    PNG contact sheets: each image with its views' boxes, attention and mask overlays, and the views
             --data SOURCE  scenes (default) | scenes:SIZE | dir:PATH | tar:PATTERN | fashion-mnist[:DIR]
             --out DIR  --count N (12)  --seed S (0)  --size PX (96)  --preset mocov2|byol|multicrop
             --masks saliency|kmeans  --attention boundary|frequency-tuned|model:PATH (a tfjs model on disk)|encoder:RUN (a train run's encoder)
  report     one self-contained HTML page about a train run: curves, eval scores (RUN/eval.json), training views, PCA of dense features, skipped inputs, config
             RUN (a train --out folder)  --out FILE (RUN/report.html)  --images N (6)  --backend  --threads N

Options:
  -h, --help     show this help
  -v, --version  print the version
`;

type Command = (argv: string[]) => Promise<number | void>;

/**
 * Each command resolves with its exit code, or nothing for 0 (a run stopped by Ctrl-C: 130).
 * Loaded when called: TensorFlow.js, sharp and Arrow take seconds to import, and `--help`, `--version`
 * or a mistyped command need none of them.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  backend: async () => (await import('./backend-command.js')).backendCommand,
  train: async () => (await import('./train-command.js')).trainCommand,
  precompute: async () => (await import('./precompute.js')).precomputeCommand,
  export: async () => (await import('./export.js')).exportCommand,
  eval: async () => (await import('./evaluate.js')).evalCommand,
  preview: async () => (await import('./preview.js')).previewCommand,
  report: async () => (await import('./report.js')).reportCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === '-v' || command === '--version') {
    process.stdout.write(`${packageJson().version}\n`);
    return 0;
  }
  const load = COMMANDS[command];
  if (!load) {
    process.stderr.write(`densestream: unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')}; see --help)\n`);
    return 2;
  }
  try {
    const run = await load();
    return (await run(rest)) ?? 0;
  } catch (err) {
    process.stderr.write(`densestream ${command}: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof ConfigError ? 2 : 1; // a wrong option: exit 2, nothing was run
  }
}

process.exitCode = await main(process.argv.slice(2));
