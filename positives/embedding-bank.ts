/**
 * The embedding bank behind clustering-based positive sampling: one L2-normalised vector per
 * sample id, written by the trainer from the target (EMA) encoder as batches pass and refreshed
 * every epoch (or every K steps), then handed to `sphericalKMeans` as one [N, d] matrix.
 *
 * Memory is O(N·d) and allocated once: every vector lives in ONE preallocated buffer of
 * `capacity × dims` elements — Float32 (4 B each: 1 M × 128 = 512 MB) or Float16 (2 B each,
 * 256 MB; Node 20 has no Float16Array, so halves are stored as bits in a Uint16Array and
 * converted by hand). Nothing per sample is a JS object except the id index: a
 * `Map<string, number>` from id to slot plus a slot → id array, about 40 B of heap per
 * sample on top of the id strings (≈ 70 MB for 1 M short ids, measured on Node 20).
 *
 * When the bank is full, a new id overwrites the oldest slot (a ring), so a stream of any
 * length keeps the bank at its preallocated size. Re-putting a known id refreshes its vector
 * in place and does not renew its place in the ring: "oldest" means first inserted.
 *
 * Occupied slots are always `0 … size − 1`, so `copyRows()` row `i` is the vector of `idAt(i)`
 * and a clustering's `assignments[i]` maps back to that id.
 */

/** Storage precision of a bank: Float32, or Float16 to halve memory (error ≤ 2.5e-4 per component of a unit vector). */
export type EmbeddingPrecision = 'float32' | 'float16';

export interface EmbeddingBankOptions {
  /** Dimensions d of every vector. */
  dims: number;
  /** Most vectors held, N; memory is `capacity × dims × (4 | 2)` bytes, allocated up front. */
  capacity: number;
  /** `'float32'` (default) or `'float16'`. */
  precision?: EmbeddingPrecision;
}

/**
 * Everything a bank holds, for a checkpoint: its raw storage (float32 values or float16 bits,
 * as stored: a restored bank is bit-identical) and its ring position.
 */
export interface EmbeddingBankState {
  dims: number;
  capacity: number;
  precision: EmbeddingPrecision;
  /** Slot the next new id takes. */
  cursor: number;
  /** `ids[i]` is the id in slot i, for the `ids.length` occupied slots. */
  ids: string[];
  /** `[ids.length, dims]` as stored: Float32 values, or Float16 bits for a float16 bank. */
  data: Float32Array | Uint16Array;
}

/** The rows of a bank at one moment, with the id of each row (the bank may go on writing). */
export interface EmbeddingSnapshot {
  /** [size, dims], row-major, unit rows. */
  rows: Float32Array;
  /** `ids[i]` is the sample of row `i`. */
  ids: string[];
  dims: number;
}

// Scratch views for reading a float's bits; no state survives a call.
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * The IEEE 754 half-precision bits nearest to `value` (round half to even; overflow → ±∞).
 * `value` is rounded to float32 first, which can differ from direct rounding only on exact ties.
 */
export function float32ToFloat16(value: number): number {
  F32[0] = value;
  const x = U32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // ∞ or NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value = m × 2^-24, m = (1.mant) >> (14 − e).
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa rightly bumps the exponent (up to ∞).
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

function decodeFloat16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m !== 0 ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Every half's value, so decoding a bank of 128 M halves is one table load each (256 KB). */
const FLOAT16_VALUES = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = decodeFloat16(h);
  return table;
})();

/** The value of IEEE 754 half-precision bits `h` (0 … 65535). */
export function float16ToFloat32(h: number): number {
  return FLOAT16_VALUES[h & 0xffff] as number;
}

/**
 * A fixed-size store of unit vectors keyed by sample id.
 *
 * @example
 * const bank = new EmbeddingBank({ dims: 128, capacity: 1_000_000, precision: 'float16' });
 * bank.putBatch(batchIds, targetEmbeddings);           // Float32Array [B, 128], any norm
 * const { rows, ids } = bank.snapshot();              // a copy: the bank keeps writing
 * const { assignments } = await clusterInWorker(rows, 128, { k: 1000, seed }, { transfer: true });
 */
export class EmbeddingBank {
  readonly dims: number;
  readonly capacity: number;
  readonly precision: EmbeddingPrecision;
  /** [capacity, dims]: float values, or float16 bits. */
  private readonly data: Float32Array | Uint16Array;
  private readonly idsBySlot: string[];
  private readonly slots = new Map<string, number>();
  /** Next slot a new id takes: the first free one, or the oldest once full. */
  private cursor = 0;
  private count = 0;

  constructor(options: EmbeddingBankOptions) {
    const { dims, capacity, precision = 'float32' } = options;
    if (!Number.isInteger(dims) || dims < 1) throw new Error(`EmbeddingBank dims: expected a positive integer, got "${dims}"`);
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new Error(`EmbeddingBank capacity: expected a positive integer of samples, got "${capacity}"`);
    }
    if (precision !== 'float32' && precision !== 'float16') {
      throw new Error(`EmbeddingBank precision: expected "float32" or "float16", got "${String(precision)}"`);
    }
    this.dims = dims;
    this.capacity = capacity;
    this.precision = precision;
    this.data = precision === 'float16' ? new Uint16Array(capacity * dims) : new Float32Array(capacity * dims);
    // Filled, not holey, so V8 keeps it a packed array of pointers.
    this.idsBySlot = new Array<string>(capacity).fill('');
  }

  /** Vectors held. */
  get size(): number {
    return this.count;
  }

  /** Bytes of vector storage: fixed at `capacity × dims × (4 | 2)` for the bank's life. */
  get byteLength(): number {
    return this.data.byteLength;
  }

  /** Stores `vector` (length `dims`, any non-zero norm) for `id`, L2-normalised; returns its slot. */
  put(id: string, vector: ArrayLike<number>): number {
    if (vector.length !== this.dims) {
      throw new Error(`EmbeddingBank.put(${JSON.stringify(id)}): expected a vector of ${this.dims} dims, got ${vector.length}`);
    }
    return this.write(id, vector, 0);
  }

  /** `put` for each of `ids`, row `i` of `rows` ([ids.length, dims], row-major) going to `ids[i]`. */
  putBatch(ids: readonly string[], rows: Float32Array): void {
    if (rows.length !== ids.length * this.dims) {
      throw new Error(
        `EmbeddingBank.putBatch: expected ${ids.length} × ${this.dims} = ${ids.length * this.dims} values for ${ids.length} ids, got ${rows.length}`,
      );
    }
    for (let i = 0; i < ids.length; i++) this.write(ids[i] as string, rows, i * this.dims);
  }

  /** Whether `id` has a vector here. */
  has(id: string): boolean {
    return this.slots.has(id);
  }

  /** The slot of `id`, or undefined. */
  slotOf(id: string): number | undefined {
    return this.slots.get(id);
  }

  /** The id in `slot` (0 ≤ slot < size). */
  idAt(slot: number): string {
    this.checkSlot(slot);
    return this.idsBySlot[slot] as string;
  }

  /**
   * A copy of one vector, by slot or by id, as Float32 (decoded from float16 if need be), written
   * into `out` when given; undefined for an id not held. A copy, not a view: the slot may be
   * overwritten later.
   */
  get(key: number | string, out: Float32Array = new Float32Array(this.dims)): Float32Array | undefined {
    let slot: number;
    if (typeof key === 'string') {
      const s = this.slots.get(key);
      if (s === undefined) return undefined;
      slot = s;
    } else {
      this.checkSlot(key);
      slot = key;
    }
    if (out.length !== this.dims) throw new Error(`EmbeddingBank.get: out holds ${out.length} values, expected ${this.dims}`);
    const start = slot * this.dims;
    if (this.data instanceof Float32Array) {
      out.set(this.data.subarray(start, start + this.dims));
    } else {
      for (let j = 0; j < this.dims; j++) out[j] = FLOAT16_VALUES[this.data[start + j] as number] as number;
    }
    return out;
  }

  /** All held vectors as one Float32 [size, dims] matrix in slot order: a copy, into `out` if given. */
  copyRows(out: Float32Array = new Float32Array(this.count * this.dims)): Float32Array {
    const length = this.count * this.dims;
    if (out.length !== length)
      throw new Error(`EmbeddingBank.copyRows: out holds ${out.length} values, expected ${this.count} × ${this.dims}`);
    if (this.data instanceof Float32Array) {
      out.set(this.data.subarray(0, length));
    } else {
      const data = this.data;
      for (let i = 0; i < length; i++) out[i] = FLOAT16_VALUES[data[i] as number] as number;
    }
    return out;
  }

  /** `copyRows()` with the id of each row, taken together so later writes cannot mismatch them. */
  snapshot(): EmbeddingSnapshot {
    return { rows: this.copyRows(), ids: this.idsBySlot.slice(0, this.count), dims: this.dims };
  }

  /** A copy of the bank's contents and ring position (see {@link EmbeddingBank.restore}). */
  exportState(): EmbeddingBankState {
    return {
      dims: this.dims,
      capacity: this.capacity,
      precision: this.precision,
      cursor: this.cursor,
      ids: this.idsBySlot.slice(0, this.count),
      data: this.data.slice(0, this.count * this.dims),
    };
  }

  /**
   * Replaces the contents with `state` (an {@link exportState} of a bank of the same dims,
   * capacity and precision, which it refuses otherwise, naming what differs): the same vectors
   * bit for bit, the same ids in the same slots, the same next slot to overwrite.
   */
  restore(state: EmbeddingBankState): void {
    const differ: string[] = [];
    if (state.dims !== this.dims) differ.push(`${state.dims} dims, not ${this.dims}`);
    if (state.capacity !== this.capacity) differ.push(`a capacity of ${state.capacity}, not ${this.capacity}`);
    if (state.precision !== this.precision) differ.push(`${state.precision} storage, not ${this.precision}`);
    if (differ.length > 0) throw new Error(`EmbeddingBank.restore: the saved bank has ${differ.join(', ')}`);
    const n = state.ids.length;
    const expected = state.precision === 'float16' ? Uint16Array : Float32Array;
    if (n > this.capacity || !(state.data instanceof expected) || state.data.length !== n * this.dims) {
      throw new Error(
        `EmbeddingBank.restore: ${n} ids with ${state.data.length} ${state.data.constructor.name} values; expected at most ${this.capacity} ids and ${n} × ${this.dims} ${expected.name} values`,
      );
    }
    if (!Number.isInteger(state.cursor) || state.cursor < 0 || state.cursor >= this.capacity || (n < this.capacity && state.cursor !== n)) {
      throw new Error(`EmbeddingBank.restore: next slot ${state.cursor} does not fit ${n} held of ${this.capacity}`);
    }
    this.slots.clear();
    for (let i = 0; i < n; i++) {
      const id = state.ids[i] as string;
      if (this.slots.has(id)) throw new Error(`EmbeddingBank.restore: id ${JSON.stringify(id)} is in slots ${this.slots.get(id)} and ${i}`);
      this.slots.set(id, i);
      this.idsBySlot[i] = id;
    }
    this.idsBySlot.fill('', n);
    this.data.fill(0);
    this.data.set(state.data);
    this.count = n;
    this.cursor = state.cursor;
  }

  /** Writes `src[offset … offset + dims)`, normalised, to `id`'s slot (a new one if need be). */
  private write(id: string, src: ArrayLike<number>, offset: number): number {
    const d = this.dims;
    let sq = 0;
    for (let j = 0; j < d; j++) {
      const v = src[offset + j] as number;
      sq += v * v;
    }
    const norm = Math.sqrt(sq);
    if (!(norm > 0) || !Number.isFinite(norm)) {
      throw new Error(`EmbeddingBank: the vector for ${JSON.stringify(id)} has norm ${norm}; expected a finite, non-zero vector`);
    }
    let slot = this.slots.get(id);
    if (slot === undefined) {
      slot = this.cursor;
      if (this.count === this.capacity)
        this.slots.delete(this.idsBySlot[slot] as string); // evict the oldest
      else this.count++;
      this.slots.set(id, slot);
      this.idsBySlot[slot] = id;
      this.cursor = slot + 1 === this.capacity ? 0 : slot + 1;
    }
    const inv = 1 / norm;
    const start = slot * d;
    const data = this.data;
    if (data instanceof Float32Array) {
      for (let j = 0; j < d; j++) data[start + j] = (src[offset + j] as number) * inv;
    } else {
      for (let j = 0; j < d; j++) data[start + j] = float32ToFloat16((src[offset + j] as number) * inv);
    }
    return slot;
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.count) {
      throw new RangeError(`EmbeddingBank: slot ${slot} is not held (size ${this.count})`);
    }
  }
}
