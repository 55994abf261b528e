/**
 * `densestream train`: assembles the data plane (source → decode → multiView → batch, bounded
 * by a sample budget), a method and the trainer. Every option is a flag and a key of the JSON
 * `--config` file; both are checked against one table before any work.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { concatMap, range, type Observable } from 'rxjs';
import { isRandomAccess, readSamples, type Source } from '../datasets/source.js';
import { createDenseCL } from '../methods/densecl.js';
import { createHapicl } from '../methods/hapicl.js';
import type { Method } from '../methods/method.js';
import { createMocoV2 } from '../methods/mocov2.js';
import { BACKEND_CHOICES, selectBackend, type BackendChoice } from '../models/backend.js';
import { RESNET_PRESETS } from '../models/resnet.js';
import { assignSaved, readSaved, readWeightsMeta, takeTensors } from '../models/weights-io.js';
import { PRESETS, type PresetName } from '../operators/augment-presets.js';
import { batch, type Batch } from '../operators/batch.js';
import type { SkipRecord } from '../operators/types/index.js';
import { fromSource } from '../operators/from-source.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { openSkipLog, skipSummary } from '../sinks/skip-log.js';
import { trainLoop, type CheckpointMeta, type MetricsRecord, type TrainResult } from '../train/trainer.js';
import { openSource } from './data-source.js';
import type { PrecomputedViews } from '../datasets/parquet-views.js';
import { decodeViews } from '../operators/decode-views.js';
import { sampleViews, type SampleViewOptions } from './sample-views.js';
import { coerce, ConfigError, flagTypes, type Spec } from './options.js';

export { ConfigError } from './options.js';

export const TRAIN_METHODS = ['densecl', 'mocov2', 'hapicl'] as const;
const MASK_SOURCES = ['saliency', 'kmeans', 'gt'] as const; // hapicl's masks
const ENCODERS = ['slim', 'resnet18'] as const;

const SPEC = {
  data: { type: 'string' },
  method: { type: 'string', choices: TRAIN_METHODS },
  steps: { type: 'int', min: 1 },
  batch: { type: 'int', min: 2 },
  size: { type: 'int', min: 16 },
  encoder: { type: 'string', choices: ENCODERS },
  preset: { type: 'string', choices: PRESETS },
  masks: { type: 'string', choices: MASK_SOURCES },
  'attention-view': { type: 'boolean' },
  'align-weight': { type: 'number', min: 0 },
  optimizer: { type: 'string', choices: ['sgd', 'adamw'] },
  backend: { type: 'string', choices: BACKEND_CHOICES },
  threads: { type: 'int', min: 1 },
  out: { type: 'string' },
  seed: { type: 'int', min: 0 },
  lr: { type: 'number', min: 0 },
  warmup: { type: 'int', min: 0 },
  'weight-decay': { type: 'number', min: 0 },
  queue: { type: 'int', min: 1 },
  'log-every': { type: 'int', min: 1 },
  'checkpoint-every': { type: 'int', min: 1 },
} as const satisfies Record<string, Spec>;

export interface TrainConfig {
  data: string; method: (typeof TRAIN_METHODS)[number]; steps: number; batch: number; size: number;
  encoder: (typeof ENCODERS)[number]; preset: PresetName; masks: (typeof MASK_SOURCES)[number]; 'attention-view': boolean; 'align-weight': number; optimizer: 'sgd' | 'adamw'; backend: BackendChoice; threads?: number; out: string;
  seed: number; lr: number; warmup: number; 'weight-decay': number; queue: number; 'log-every': number; 'checkpoint-every': number;
}

const DEFAULTS: Omit<TrainConfig, 'out'> = {
  data: 'scenes', method: 'densecl', steps: 200, batch: 32, size: 64, encoder: 'slim', preset: 'mocov2', masks: 'saliency', 'attention-view': false, 'align-weight': 0, optimizer: 'sgd', backend: 'auto',
  seed: 0, lr: 0.05, warmup: 20, 'weight-decay': 1e-4, queue: 4096, 'log-every': 10, 'checkpoint-every': 100,
};

/**
 * Flags over the config file over the defaults; every value checked, nothing run yet. With
 * `--resume`, the configuration is the checkpoint's and only `--out` may be given.
 */
export function parseTrainConfig(argv: string[]): TrainConfig & { resume: boolean } {
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      args: argv,
      options: {
        ...flagTypes(SPEC),
        config: { type: 'string' },
        resume: { type: 'boolean' },
      },
      strict: true,
    }).values;
  } catch (err) {
    throw new ConfigError(err instanceof Error ? err.message : String(err));
  }
  if (flags['resume']) {
    const others = Object.keys(flags).filter((k) => k !== 'resume' && k !== 'out' && flags[k] !== undefined);
    if (others.length > 0) throw new ConfigError(`--resume takes the configuration from the checkpoint; drop --${others.join(', --')}`);
    const out = typeof flags['out'] === 'string' ? flags['out'] : join('runs', DEFAULTS.method);
    const dir = join(out, 'checkpoint');
    if (!existsSync(join(dir, 'weights.json'))) throw new ConfigError(`--resume: no checkpoint in ${dir}`);
    const meta = readWeightsMeta(dir) as CheckpointMeta;
    return { ...(meta.config as TrainConfig), out, resume: true };
  }
  const merged: Record<string, string | number | boolean> = { ...DEFAULTS };
  const given = new Set<string>();
  if (typeof flags['config'] === 'string') {
    const file = flags['config'];
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`--config ${file}: cannot read it as JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`--config ${file}: expected a JSON object`);
    for (const [k, v] of Object.entries(json)) {
      merged[k] = coerce(SPEC, k, v, `--config ${file}:`, false);
      given.add(k);
    }
  }
  for (const [k, v] of Object.entries(flags)) {
    if (k === 'config' || v === undefined) continue;
    merged[k] = coerce(SPEC, k, v, '--', true);
    given.add(k);
  }
  merged['out'] ??= join('runs', String(merged['method']));
  // Adam's steps are normalised: SGD's default rate would blow it up. Keep an explicit --lr.
  if (merged['optimizer'] === 'adamw' && !given.has('lr')) merged['lr'] = 1e-3;
  return { ...(merged as unknown as TrainConfig), resume: false };
}

function createMethod(c: TrainConfig): Method {
  const common = { encoder: RESNET_PRESETS[c.encoder], seed: c.seed, queueSize: c.queue, alignWeight: c['align-weight'] };
  switch (c.method) {
    case 'mocov2': return createMocoV2(common);
    case 'densecl': return createDenseCL(common);
    case 'hapicl': return createHapicl(common);
  }
}

/** Training from `precompute` shards: the views must be the ones this configuration asks for. */
function checkPrecomputed(c: TrainConfig, p: PrecomputedViews): void {
  const differ: string[] = [];
  if (p.size !== c.size) differ.push(`--size ${c.size} (the views are ${p.size} px)`);
  if (p.preset !== c.preset) differ.push(`--preset ${c.preset} (the views are ${p.preset})`);
  if (p.attentionView !== c['attention-view']) differ.push(`--attention-view ${c['attention-view']} (the views were cut with ${p.attentionView})`);
  if (c.method === 'hapicl' && p.masks === 'none') differ.push('--method hapicl needs masks (precompute with --masks saliency|kmeans|gt)');
  if (differ.length > 0) throw new ConfigError(`--data ${c.data}: precomputed views do not fit: ${differ.join('; ')}`);
}

/**
 * The batches a run trains on from step `startStep`: each epoch's samples in seeded order,
 * cut into views live (decode → masks → multiView) or, for `parquet:DIR`, the precomputed
 * views of that epoch. Samples hold a permit of `budget` until the trainer releases them.
 */
export function trainBatches(c: TrainConfig, source: Source, budget: SampleBudget, record: (r: SkipRecord) => void, startStep = 0): Observable<Batch> {
  const viewOptions: SampleViewOptions = { size: c.size, preset: c.preset, attentionView: c['attention-view'], masks: c.method === 'hapicl' ? c.masks : 'none', seed: c.seed };
  const perEpoch = isRandomAccess(source) && Number.isFinite(source.size) ? source.size : Infinity;
  const position = startStep * c.batch;
  const firstEpoch = Number.isFinite(perEpoch) ? Math.floor(position / perEpoch) : 0;
  const firstSkip = Number.isFinite(perEpoch) ? position % perEpoch : position;
  const epochs = Number.isFinite(perEpoch) ? Math.ceil((c.steps * c.batch) / perEpoch) + 1 : 1;
  const precomputed = 'precomputed' in source ? (source.precomputed as PrecomputedViews) : undefined;
  if (precomputed) checkPrecomputed(c, precomputed);
  const dropped = (r: SkipRecord) => { record(r); budget.release(); };
  const views = (epoch: number) => precomputed
    ? decodeViews({ perEpoch: precomputed.viewsPerEpoch, epoch, onSkip: dropped })
    : sampleViews(viewOptions, [epoch], dropped, record);
  return range(firstEpoch, Math.max(1, epochs - firstEpoch)).pipe(
    concatMap((epoch) =>
      fromSource(readSamples(source, { seed: c.seed, epoch, skip: epoch === firstEpoch ? firstSkip : 0 }, record), budget).pipe(views(epoch))),
    batch(c.batch, { keepLast: false }),
  );
}

export interface RunOptions {
  /** Continue from `config.out`/checkpoint: its weights, queues, optimiser slots and step. */
  resume?: boolean;
  onLog?: (record: MetricsRecord) => void;
  shouldStop?: (stepsDone: number) => boolean;
}

/**
 * Trains per `config`. Every random choice is keyed by (seed, epoch, id, view), so the data
 * after step n is fully determined by the position n × batch: a resumed run sees exactly the
 * batches the uninterrupted one would (as long as no input was skipped as unreadable).
 */
export async function runTraining(c: TrainConfig, options: RunOptions = {}): Promise<TrainResult & { backend: string }> {
  const selection = await selectBackend(c.backend, c.threads === undefined ? {} : { threads: c.threads });
  for (const line of selection.reasons) process.stderr.write(`${line}\n`);
  const source = await openSource(c.data);
  const method = createMethod(c);
  try {
    let startStep = 0;
    let optimizerState: ReturnType<typeof takeTensors> | undefined;
    if (options.resume) {
      const saved = readSaved(join(c.out, 'checkpoint')); // read and decoded once
      assignSaved(method.checkpointState(), saved);
      startStep = (saved.meta as CheckpointMeta).step;
      optimizerState = takeTensors(saved, 'optimizer/'); // frees the rest; the trainer frees these
    }
    const skipped = openSkipLog(join(c.out, 'skipped.jsonl'));
    // Room for the batch being trained on, the next one being collated, and decodes in flight.
    const budget = new SampleBudget(3 * c.batch + 16);
    const batches = trainBatches(c, source, budget, (r) => skipped.record(r), startStep);
    const result = await trainLoop(method, batches, budget, {
      steps: c.steps, learningRate: c.lr, warmupSteps: Math.min(c.warmup, c.steps), weightDecay: c['weight-decay'], optimizer: c.optimizer,
      logEvery: c['log-every'], checkpointEvery: c['checkpoint-every'], outDir: c.out, config: c,
      startStep, optimizerState, onLog: options.onLog, shouldStop: options.shouldStop,
    });
    const n = await skipped.close();
    if (n > 0) process.stderr.write(`${skipSummary(source.name, n, skipped)}\n`);
    return { ...result, backend: selection.backend };
  } finally {
    method.dispose();
  }
}

export async function trainCommand(argv: string[]): Promise<void> {
  const { resume, ...c } = parseTrainConfig(argv);
  const tty = process.stderr.isTTY === true;
  const onLog = (r: MetricsRecord) => {
    const eta = Math.round(((c.steps - r.step) * r.seconds) / Math.max(1, r.step));
    const line = `step ${r.step}/${c.steps}  loss ${r.loss.toFixed(4)}  lr ${r.lr.toFixed(4)}  ${r.imagesPerSec.toFixed(1)} img/s  data wait ${(100 * r.dataWaitFraction).toFixed(0)}%  ETA ${eta} s`;
    process.stderr.write(tty ? `\r${line}` : `${line}\n`);
  };
  // Ctrl-C: finish the step in hand, checkpoint, exit cleanly (a second Ctrl-C kills).
  let interrupted = false;
  const onInterrupt = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\ninterrupted: checkpointing after this step (Ctrl-C again to abort)\n');
  };
  process.on('SIGINT', onInterrupt);
  try {
    const result = await runTraining(c, { resume, onLog, shouldStop: () => interrupted });
    if (tty) process.stderr.write('\n');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    process.stdout.write(`${JSON.stringify({
      method: c.method, encoder: c.encoder, backend: result.backend, steps: result.steps, batch: c.batch, size: c.size,
      imagesPerSec: Math.round(result.imagesPerSec * 10) / 10, dataWaitFraction: Math.round(result.dataWaitFraction * 1000) / 1000,
      lossFirst10: Math.round(mean(result.losses.slice(0, 10)) * 1e4) / 1e4, lossLast10: Math.round(mean(result.losses.slice(-10)) * 1e4) / 1e4,
      checkpoint: join(c.out, 'checkpoint'), metrics: join(c.out, 'metrics.jsonl'), interrupted,
    })}\n`);
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}
