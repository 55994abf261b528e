/**
 * Options several commands declare alike: where compute runs, where view pixels are cut, the
 * views' hue and saliency maps, and how remote shards are read.
 * Each command's schema spreads them in, so their checks and help read the same everywhere.
 */
import { availableParallelism } from 'node:os';
import * as z from 'zod';
import { ConfigError } from '../core/config-error.js';
import type { TarOptions } from '../datasets/tar-shards.js';
import { BACKEND_CHOICES } from '../models/backend-choice.js';
import { AUGMENT_CHOICES, type AugmentChoice } from '../operators/augment-path.js';
import { SALIENCY_METHODS, SALIENCY_SIZE, saliencySizeFor } from '../operators/saliency.js';
import { DEFAULT_RECIPE } from './recipe.js';

/** `--backend`, `--threads` and `--verbose`, for every command that computes. */
export const BACKEND_OPTIONS = {
  backend: z.enum(BACKEND_CHOICES).default('auto').meta({
    arg: 'NAME',
    description: 'the compute backend; auto takes the first that loads: tfjs-node-gpu, tfjs-node, webgpu on a hardware adapter, wasm, cpu',
  }),
  threads: z.number().int().min(1).max(8).optional().meta({ arg: 'N', defaultText: 'the cores', description: 'wasm compute threads' }),
  verbose: z
    .boolean()
    .default(false)
    .meta({ flagOnly: true, description: 'also say why each backend before the one taken was passed over' }),
};

/** `--augment`: per image with sharp, per batch by tensor ops on the backend, or the one measured cheaper. */
export function augmentOption(fallback: AugmentChoice) {
  return z.enum(AUGMENT_CHOICES).default(fallback).meta({
    arg: 'WHERE',
    description:
      'where view pixels are cut: per image with sharp (cpu), per batch by tensor ops (backend), or auto: both measured on the first images, the cheaper taken',
  });
}

/** `--min-foreground F` (train with hapicl, precompute with masks): a fraction in [0, 1), its default settled by the command. */
export function minForegroundOption(defaultText: string, description: string) {
  return z.number().min(0).lt(1).optional().meta({ arg: 'F', expected: 'a fraction in [0, 1)', defaultText, description });
}

/**
 * `--hue H`: the colour jitter's hue range, for every command that cuts training views. The
 * default recipe draws any hue (0.5), where the presets' papers use 0.1: on the scenes an
 * object's colour is random per image and both views share it, so instance discrimination can
 * tell images apart by colour alone, and a full hue range takes that cue away (`recipe.ts`).
 * On photos, where colour is part of what an object is, the papers' `--hue 0.1` may suit better.
 */
export const HUE_OPTION = {
  hue: z.number().min(0).max(0.5).default(DEFAULT_RECIPE.hue).meta({
    arg: 'H',
    expected: 'a range in turns in [0, 0.5]',
    description: "each view's hue shifts by up to ±H turns (colour jitter); 0.5 draws any hue, 0.1 is MoCo v2's",
  }),
};

/**
 * `--workers N`: the pixel workers (`PixelWorkers`) that compute saliency maps and their masks
 * while the main thread trains or writes. Like `--threads`, how this machine runs, not what
 * the run is: the maps are the same with any count, so a resumed run may change it.
 */
export const WORKERS_OPTION = {
  workers: z.number().int().min(0).max(16).optional().meta({
    arg: 'N',
    defaultText: 'cores − 1, from 1 to 4',
    description: 'threads that compute saliency maps and masks beside the main thread; 0: on the main thread',
  }),
};

/** `--workers`' count: as given, else one fewer than the cores, at least 1 and at most 4. */
export function pixelWorkerCount(workers: number | undefined): number {
  return workers ?? Math.min(4, Math.max(1, availableParallelism() - 1));
}

/**
 * `--saliency-size PX`: the long side of the saliency maps behind attention views and saliency
 * masks. A map finer than the views gives the encoder's grid nothing it can see, and every
 * image pays for it on a pixel worker, beside the step (docs/performance.md, "Measured: the saliency map's size").
 */
export const SALIENCY_SIZE_OPTION = {
  'saliency-size': z
    .number()
    .int()
    .min(8)
    .max(1024)
    .optional()
    .meta({
      arg: 'PX',
      defaultText: `the view size, at most ${SALIENCY_SIZE}`,
      description: 'long side of the saliency maps that attention views and saliency masks come from',
    }),
};

/** Whether views use saliency maps: for saliency masks or an attention view, with a saliency method as the attention (unset: the default, boundary). */
export function usesSaliency(masks: ViewMasks, attentionView: boolean, attention: string | undefined): boolean {
  return (
    (masks === 'saliency' || attentionView) && (attention === undefined || (SALIENCY_METHODS as readonly string[]).includes(attention))
  );
}

/**
 * `--saliency-size` settled: where views use saliency maps, as given or {@link saliencySizeFor}
 * the view size; elsewhere unset, and refused when given (`nowhere` says why).
 */
export function settleSaliencySize(
  value: number | undefined,
  given: ReadonlySet<string>,
  o: { size: number; uses: boolean; nowhere: string },
): number | undefined {
  if (o.uses) return value ?? saliencySizeFor(o.size);
  if (given.has('saliency-size')) throw new ConfigError(`--saliency-size: ${o.nowhere}; drop it`);
  return undefined;
}

/**
 * Whether `--data` names a source with per-pixel ground truth (`--masks gt`, `eval`'s dense and
 * mask protocols): the scenes render theirs, Fashion-MNIST derives its silhouettes.
 */
export const carriesGroundTruth = (data: string): boolean => /^(scenes|fashion-mnist|fashion-mnist-test)(:|$)/.test(data);

/** The foreground masks a view chain can carry: none, saliency, colour k-means, the ground truth (scenes, Fashion-MNIST), or the features of an encoder. */
export const VIEW_MASKS = ['none', 'saliency', 'kmeans', 'gt', 'encoder'] as const;
export type ViewMasks = (typeof VIEW_MASKS)[number];

/** The options of `tar:` shards read over HTTP(S) or S3, for every command that reads a source whole. */
export const REMOTE_SHARD_OPTIONS = {
  'on-missing-shard': z.enum(['fail', 'skip']).default('fail').meta({
    arg: 'HOW',
    description:
      'tar: a remote shard that is missing (403, 404) or still unreadable after the retries: end the job naming it (fail), or record it in skipped.jsonl and go on (skip)',
  }),
  retries: z
    .number()
    .int()
    .min(0)
    .default(6)
    .meta({ arg: 'N', description: 'tar: failed reads of a remote shard in a row, without progress, before it is given up' }),
  'read-timeout': z.number().positive().max(86_400).default(30).meta({
    arg: 'S',
    description: 'tar: seconds to wait for any one read of a remote shard (its response, or its next bytes) before it is cut and resumed',
  }),
  'shards-in-flight': z
    .number()
    .int()
    .min(1)
    .max(16)
    .default(2)
    .meta({ arg: 'N', description: 'tar: remote shards open at once: the one being read and those opened ahead of it' }),
  's3-endpoint': z.string().optional().meta({
    arg: 'URL',
    defaultText: 'AWS_ENDPOINT_URL',
    description: 'tar: an S3-compatible store for s3:// shards (MinIO, Ceph, R2), addressed path-style',
  }),
  cache: z
    .string()
    .optional()
    .meta({ arg: 'DIR', description: 'tar: keep remote shards on local disk, so a later epoch reads them from there' }),
  'cache-size': z
    .number()
    .positive()
    .default(50)
    .meta({ arg: 'GB', description: 'tar: the most --cache holds; least recently used shards go first' }),
};

/** The remote-shard options of a command's config; a run checkpointed before they existed has none. */
type RemoteShardConfig = { data: string } & Partial<z.output<z.ZodObject<typeof REMOTE_SHARD_OPTIONS>>>;

/** Refuses a remote-shard option given for a source that reads no shards. */
export function checkRemoteShardOptions(c: RemoteShardConfig, given: ReadonlySet<string>): void {
  if (c.data.startsWith('tar:')) {
    if (given.has('cache-size') && c.cache === undefined) throw new ConfigError('--cache-size: give --cache DIR too (the folder it sizes)');
    return;
  }
  const stray = Object.keys(REMOTE_SHARD_OPTIONS).filter((k) => given.has(k));
  if (stray.length > 0) throw new ConfigError(`--${stray[0]}: only tar: shards are read remotely; --data ${c.data} is not tar:PATTERN`);
}

/** The `tarShardsSource` options the remote-shard flags give. */
export function tarOptionsOf(c: RemoteShardConfig): TarOptions {
  return {
    onMissingShard: c['on-missing-shard'],
    retry: { retries: c.retries, readTimeoutMs: c['read-timeout'] === undefined ? undefined : c['read-timeout'] * 1000 },
    shardsInFlight: c['shards-in-flight'],
    ...(c['s3-endpoint'] !== undefined ? { s3: { endpoint: c['s3-endpoint'] } } : {}),
    ...(c.cache !== undefined ? { cache: { dir: c.cache, maxBytes: (c['cache-size'] ?? 50) * 1e9 } } : {}),
  };
}
