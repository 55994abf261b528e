/**
 * The momentum (EMA) branch shared by MoCo, DenseCL and the soft-ranking method:
 * `θ_k ← m·θ_k + (1 − m)·θ_q` after every step, and a FIFO queue of past keys.
 */
import * as tf from '@tensorflow/tfjs';
import { emaOf } from '../models/kernels/update-kernels.js';
import { variableFrom } from '../models/variables.js';
import { tfSeed } from '../models/seed.js';
import { l2Normalize } from './losses.js';

/**
 * Refuses two sets of weights that do not hold the same names with the same shapes, naming the
 * first differences: a copy between them would leave some weights as initialised
 * ({@link copyWeights} copies by name and skips a name the target lacks).
 */
export function assertSameWeights(source: Record<string, tf.Variable>, target: Record<string, tf.Variable>, what: string): void {
  const missing = Object.keys(source).filter((k) => !(k in target));
  const extra = Object.keys(target).filter((k) => !(k in source));
  const reshaped = Object.keys(source).filter(
    (k) => k in target && (source[k] as tf.Variable).shape.join('×') !== (target[k] as tf.Variable).shape.join('×'),
  );
  if (missing.length + extra.length + reshaped.length === 0) return;
  const list = (names: string[]) => names.slice(0, 3).join(', ') + (names.length > 3 ? ` and ${names.length - 3} more` : '');
  const differ = [
    ...(missing.length ? [`the copy lacks ${list(missing)}`] : []),
    ...(extra.length ? [`the copy has ${list(extra)} the source lacks`] : []),
    ...(reshaped.length ? [`shapes differ for ${list(reshaped)}`] : []),
  ];
  throw new Error(`${what}: the copy's weights do not match its source's: ${differ.join('; ')}`);
}

/** Copies `source` into `target` (matched by name); the momentum branch starts as the online one. */
export function copyWeights(source: Record<string, tf.Variable>, target: Record<string, tf.Variable>): void {
  for (const [name, v] of Object.entries(source)) target[name]?.assign(v);
}

/** `θ_k ← m·θ_k + (1 − m)·θ_q` for every trainable weight of the online branch. */
export function emaUpdate(online: Record<string, tf.Variable>, momentum: Record<string, tf.Variable>, m: number): void {
  if (!(m >= 0 && m <= 1)) throw new Error(`momentum: expected a number in [0, 1], got ${m}`);
  tf.tidy(() => {
    for (const [name, q] of Object.entries(online)) {
      if (!q.trainable) continue; // batch-norm running statistics follow each branch's own data
      const k = momentum[name];
      if (k) k.assign(emaOf(k, q, m)); // one kernel call where the ops made three (the same values)
    }
  });
}

/** A FIFO queue of L2-normalised keys `[K, D]`, random at the start (MoCo). */
export class KeyQueue {
  readonly keys: tf.Variable;
  readonly pointer: tf.Variable;
  /** The pointer as a number, for the variable's data it was read from: read back only after a restore assigned it. */
  #at: { id: object; value: number } | undefined;

  constructor(
    readonly size: number,
    readonly dim: number,
    seed: number,
    name: string,
  ) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`${name}: queue size must be a positive integer, got ${size}`);
    this.keys = variableFrom(
      tf.tidy(() => l2Normalize(tf.randomNormal([size, dim], 0, 1, 'float32', tfSeed(seed, name)))),
      false,
      `${name}/keys`,
    );
    this.pointer = variableFrom(tf.scalar(0, 'int32'), false, `${name}/pointer`);
  }

  /** Replaces the oldest keys with `batch` `[N, D]` (normalised), wrapping around. */
  enqueue(batch: tf.Tensor2D): void {
    const n = batch.shape[0];
    if (n > this.size) throw new Error(`queue: ${n} keys do not fit a queue of ${this.size}`);
    if (batch.shape[1] !== this.dim) throw new Error(`queue: keys of ${batch.shape[1]} values do not fit a queue of ${this.dim}`);
    if (this.#at?.id !== this.pointer.dataId) this.#at = { id: this.pointer.dataId, value: this.pointer.dataSync()[0] as number };
    const start = this.#at.value;
    const [size, dim, keys] = [this.size, this.dim, this.keys as tf.Tensor2D];
    tf.tidy(() => {
      // The rows written are one run from `start`, wrapping at the end: the new queue is the old
      // one's rows before and after that run around the batch, one concat. (A scatter of the batch
      // and a mask over every row took 1.4 ms a step with a 4 096 × 128 queue, this 0.5.)
      const end = start + n;
      const rows = (t: tf.Tensor2D, from: number, count: number) => tf.slice(t, [from, 0], [count, dim]);
      const wrapped = end - size; // rows of the batch that go to the queue's top
      const parts =
        wrapped <= 0
          ? [rows(keys, 0, start), batch, rows(keys, end, size - end)]
          : [rows(batch, n - wrapped, wrapped), rows(keys, wrapped, start - wrapped), rows(batch, 0, n - wrapped)];
      this.keys.assign(
        tf.concat(
          parts.filter((p) => p.shape[0] > 0),
          0,
        ),
      );
      this.pointer.assign(tf.scalar(end % size, 'int32'));
    });
    this.#at = { id: this.pointer.dataId, value: (start + n) % size };
  }

  dispose(): void {
    tf.dispose([this.keys, this.pointer]);
  }
}

/**
 * Keys computed in `loss` wait here until the optimiser step is done, then join their queues:
 * enqueueing during the loss would let a batch contrast with its own keys.
 */
export class PendingKeys {
  private staged = new Map<KeyQueue, tf.Tensor2D>();

  /** Holds `keys` (kept past the loss's tidy) for `queue`, replacing any not yet flushed. */
  stage(queue: KeyQueue, keys: tf.Tensor2D): void {
    this.staged.get(queue)?.dispose();
    this.staged.set(queue, tf.keep(keys));
  }

  /** Enqueues everything staged and frees it. */
  flush(): void {
    for (const [queue, keys] of this.staged) {
      queue.enqueue(keys);
      keys.dispose();
    }
    this.staged.clear();
  }

  dispose(): void {
    for (const keys of this.staged.values()) keys.dispose();
    this.staged.clear();
  }
}
