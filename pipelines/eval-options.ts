/**
 * `densestream eval`'s options: one declaration (flags, `--config` keys, `--help`) and the
 * checks across them, free of tfjs so a wrong option is refused at once.
 */
import { dirname, join } from 'node:path';
import * as z from 'zod';
import { ConfigError } from '../core/config-error.js';
import { ENCODER_NAMES } from '../models/encoder-spec.js';
import { WEIGHT_INITS } from '../models/weight-init.js';
import { parseCommand, type CommandSchema } from './command-schema.js';
import { DEFAULT_RECIPE } from './recipe.js';
import { checkpointDir } from './run-folder.js';
import { BACKEND_OPTIONS, carriesGroundTruth } from './shared-options.js';

export const PROTOCOLS = ['knn', 'linear', 'dense', 'masks'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const EVAL_MASKS = ['encoder', 'saliency', 'kmeans'] as const;

/** The scenes seed of the held-out split: `train` renders seed 0, so no run has seen these. */
export const HELD_OUT_SCENES_SEED = 1;
/** The share of a labelled folder (`dir:PATH`) held out for scoring, by a seeded hash of each id. */
export const FOLDER_HELD_OUT = 0.2;

/**
 * `--split val`: a second held-out set, for choosing options (a temperature, a schedule) without
 * looking at the test set the results are reported on. Scenes of another unseen seed; for
 * Fashion-MNIST the train file from this index on (its test file is the test set; `train` may
 * have seen these pixels, never their labels); for a folder a second share by the same hash,
 * taken from the train part.
 */
export const VAL_SCENES_SEED = 2;
export const FASHION_VAL_FROM = 50_000;
export const FOLDER_VAL = 0.2;
export const EVAL_SPLITS = ['test', 'val'] as const;
export type EvalSplit = (typeof EVAL_SPLITS)[number];

export const isScenes = (data: string) => data === 'scenes' || data.startsWith('scenes:');
export const isFashion = (data: string) => data === 'fashion-mnist' || data.startsWith('fashion-mnist:');
const isFolder = (data: string) => data.startsWith('dir:');

export const EVAL_COMMAND = {
  name: 'eval',
  summary: 'frozen-feature evaluation of a train run (or --checkpoint random), merged into RUN/eval.json',
  required: ['checkpoint'] as const,
  configFile: true,
  options: z.object({
    checkpoint: z.string().optional().meta({
      arg: 'RUN',
      description: 'a train --out folder (or its checkpoint/), or random: a seeded random-init --encoder, the baseline',
    }),
    encoder: z.enum(ENCODER_NAMES).default('slim').meta({ arg: 'NAME', description: 'the encoder of --checkpoint random' }),
    init: z
      .enum(WEIGHT_INITS)
      .default('densestream')
      .meta({ arg: 'DRAW', description: "the draw of --checkpoint random, as train's --init: densestream or reference" }),
    protocol: z
      .enum([...PROTOCOLS, 'all'])
      .default('all')
      .meta({
        arg: 'NAME',
        description:
          "kNN (k = 20 and 200), a linear probe, a dense probe (mIoU), foreground masks (IoU); all: every one the data allows (dense and masks: scenes' ground truth, Fashion-MNIST's silhouettes)",
      }),
    data: z.string().default('scenes').meta({
      arg: 'SOURCE',
      description:
        'labelled images with a held-out split: scenes[:SIZE] (held out: scenes of seed 1), fashion-mnist[:DIR] (its test file), dir:PATH (one sub-folder per class; 20 % held out by a hash of --seed and each path)',
    }),
    train: z.number().int().min(10).default(5000).meta({ arg: 'N', description: 'labelled images of the kNN memory and the linear probe' }),
    test: z.number().int().min(10).default(1000).meta({ arg: 'N', description: 'held-out images every protocol is scored on' }),
    split: z
      .enum(EVAL_SPLITS)
      .default('test')
      .meta({
        arg: 'NAME',
        description: `the held-out images scored: test (report these), or val, a second held-out set for choosing options without looking at test: scenes of seed ${VAL_SCENES_SEED}, Fashion-MNIST's train images from ${FASHION_VAL_FROM} on, a second ${FOLDER_VAL * 100} % of a folder`,
      }),
    'dense-train': z.number().int().min(10).default(1000).meta({ arg: 'N', description: 'images the dense probe trains on' }),
    masks: z
      .enum(EVAL_MASKS)
      .default('encoder')
      .meta({ arg: 'SOURCE', description: "the masks protocol's masks: 2-means on the encoder's features, saliency, or colour k-means" }),
    epochs: z.number().int().min(1).optional().meta({ arg: 'E', defaultText: '40 linear, 15 dense', description: 'probe epochs' }),
    size: z
      .number()
      .int()
      .min(16)
      .optional()
      .meta({
        arg: 'PX',
        defaultText: `the checkpoint's; ${DEFAULT_RECIPE.size} for random (train's default)`,
        description: 'image side fed to the encoder',
      }),
    out: z
      .string()
      .optional()
      .meta({ arg: 'DIR', defaultText: 'the run; runs/random-init-ENCODER for random', description: 'the folder of eval.json' }),
    seed: z
      .number()
      .int()
      .min(0)
      .default(0)
      .meta({ arg: 'S', description: 'seeds the random-init encoder, the probes and the folder split' }),
    ...BACKEND_OPTIONS,
    quiet: z.boolean().default(false).meta({ description: 'no progress or backend lines on stderr' }),
  }),
} satisfies CommandSchema;

type EvalOptions = z.output<typeof EVAL_COMMAND.options>;

export type EvalConfig = Omit<EvalOptions, 'protocol' | 'checkpoint' | 'out'> & {
  /** A `train` run's checkpoint folder, or `random` for a seeded random-init `--encoder`. */
  checkpoint: string;
  protocols: Protocol[];
  /** Whether `--protocol` named them (else: every protocol the data allows). */
  protocolsGiven?: boolean;
  out: string;
};

export function parseEvalConfig(argv: readonly string[]): EvalConfig {
  const { values, given } = parseCommand(EVAL_COMMAND, argv);
  const { protocol, checkpoint = 'random', out, ...rest } = values;
  const random = checkpoint === 'random';
  for (const flag of ['encoder', 'init'] as const)
    if (!random && given.has(flag))
      throw new ConfigError(`--${flag}: the checkpoint decides the encoder and its weights; drop --${flag} (or use --checkpoint random)`);
  if (!isScenes(rest.data) && !isFashion(rest.data) && !isFolder(rest.data)) {
    throw new ConfigError(
      `--data ${rest.data}: evaluation needs labelled images with a held-out split: scenes[:SIZE], fashion-mnist[:DIR] or dir:PATH (one sub-folder per class)`,
    );
  }
  if (rest.split === 'val' && isFashion(rest.data) && rest.train > FASHION_VAL_FROM)
    throw new ConfigError(
      `--train ${rest.train}: with --split val the kNN memory and the linear probe read Fashion-MNIST's first ${FASHION_VAL_FROM} train images, and validation the rest; give --train ${FASHION_VAL_FROM} or fewer`,
    );
  const pixelTruth = carriesGroundTruth(rest.data);
  let protocols: Protocol[];
  if (protocol === 'all') {
    protocols = pixelTruth ? [...PROTOCOLS] : ['knn', 'linear'];
  } else {
    protocols = [protocol];
    if (!pixelTruth && (protocol === 'dense' || protocol === 'masks')) {
      throw new ConfigError(
        `--protocol ${protocol}: needs per-pixel ground truth, which only --data scenes and fashion-mnist have (got ${rest.data})`,
      );
    }
  }
  const dir = random ? checkpoint : checkpointDir(checkpoint);
  return {
    ...rest,
    checkpoint: dir,
    protocols,
    ...(protocol === 'all' ? {} : { protocolsGiven: true }),
    out: out ?? (random ? join('runs', `random-init-${rest.encoder}`) : dirname(dir)),
  };
}
