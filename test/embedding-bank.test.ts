import { describe, expect, it } from 'vitest';
import { EmbeddingBank, float16ToFloat32, float32ToFloat16, type EmbeddingPrecision } from '../positives/embedding-bank.js';
import { keyedRng } from '../core/index.js';

/** `count` random vectors of `dims` (not normalised), row-major. */
function randomRows(count: number, dims: number, seed = 0): Float32Array {
  const rng = keyedRng(seed, 'bank-rows');
  const rows = new Float32Array(count * dims);
  for (let i = 0; i < rows.length; i++) rows[i] = rng.normal() * 3;
  return rows;
}

function norm(v: Float32Array): number {
  let sq = 0;
  for (const x of v) sq += x * x;
  return Math.sqrt(sq);
}

describe('float16 conversion', () => {
  it('encodes the landmarks of IEEE 754 half precision', () => {
    expect(float32ToFloat16(0)).toBe(0x0000);
    expect(float32ToFloat16(-0)).toBe(0x8000);
    expect(float32ToFloat16(1)).toBe(0x3c00);
    expect(float32ToFloat16(-2)).toBe(0xc000);
    expect(float32ToFloat16(65504)).toBe(0x7bff); // largest finite half
    expect(float32ToFloat16(65520)).toBe(0x7c00); // rounds up to ∞
    expect(float32ToFloat16(-Infinity)).toBe(0xfc00);
    expect(float32ToFloat16(2 ** -14)).toBe(0x0400); // smallest normal
    expect(float32ToFloat16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16(2 ** -26)).toBe(0x0000); // below half of it: zero
    expect(float32ToFloat16(1 + 2 ** -11)).toBe(0x3c00); // a tie rounds to even
    expect(float32ToFloat16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float16ToFloat32(float32ToFloat16(NaN))).toBeNaN();
  });

  it('round-trips every one of the 65 536 halves that is a number', () => {
    let mismatches = 0;
    for (let h = 0; h < 65536; h++) {
      const v = float16ToFloat32(h);
      if (!Number.isNaN(v) && float32ToFloat16(v) !== h) mismatches++;
    }
    expect(mismatches).toBe(0);
  });
});

describe('EmbeddingBank', () => {
  const precisions: EmbeddingPrecision[] = ['float32', 'float16'];

  it.each(precisions)('gives vectors back L2-normalised, pointing the same way (%s)', (precision) => {
    const bank = new EmbeddingBank({ dims: 64, capacity: 100, precision });
    const rows = randomRows(50, 64);
    for (let i = 0; i < 50; i++) bank.put(`s${i}`, rows.subarray(i * 64, i * 64 + 64));
    for (let i = 0; i < 50; i++) {
      const v = bank.get(`s${i}`)!;
      expect(Math.abs(norm(v) - 1)).toBeLessThan(precision === 'float16' ? 2e-3 : 1e-6);
      const raw = rows.subarray(i * 64, i * 64 + 64);
      let cos = 0;
      for (let j = 0; j < 64; j++) cos += (v[j] as number) * (raw[j] as number);
      expect(cos / norm(raw)).toBeGreaterThan(0.999);
    }
  });

  it('stores float16 within 1e-3 of the float32 unit vector, in half the bytes', () => {
    const f32 = new EmbeddingBank({ dims: 128, capacity: 1000 });
    const f16 = new EmbeddingBank({ dims: 128, capacity: 1000, precision: 'float16' });
    const ids = Array.from({ length: 1000 }, (_, i) => `s${i}`);
    const rows = randomRows(1000, 128, 1);
    f32.putBatch(ids, rows);
    f16.putBatch(ids, rows);
    const a = f32.copyRows();
    const b = f16.copyRows();
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
    expect(worst).toBeLessThan(1e-3);
    expect(f32.byteLength).toBe(1000 * 128 * 4);
    expect(f16.byteLength).toBe(1000 * 128 * 2);
  });

  it.each(precisions)('keeps its preallocated bytes while 10× its capacity streams through (%s)', (precision) => {
    const capacity = 2000;
    const dims = 32;
    const bank = new EmbeddingBank({ dims, capacity, precision });
    const bytes = bank.byteLength;
    expect(bytes).toBe(capacity * dims * (precision === 'float16' ? 2 : 4));
    const rows = randomRows(100, dims, 2);
    const stream = (from: number, to: number): void => {
      for (let start = from; start < to; start += 100) {
        bank.putBatch(
          Array.from({ length: 100 }, (_, i) => `sample-${start + i}`),
          rows,
        );
      }
    };
    stream(0, capacity); // fill once: the index reaches its full size
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    stream(capacity, 10 * capacity);
    global.gc?.();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    expect(bank.byteLength).toBe(bytes);
    expect(bank.size).toBe(capacity);
    expect(bank.has(`sample-${10 * capacity - 1}`)).toBe(true);
    expect(bank.has(`sample-${9 * capacity - 1}`)).toBe(false);
    // 18 000 evictions leave no per-sample garbage behind: the heap stays flat (a loose bound, 1 MB,
    // against ~1.3 MB that keeping every evicted id would cost).
    expect(heapGrowth).toBeLessThan(1_000_000);
  });

  it('evicts the oldest ids first; re-putting an id refreshes it in place', () => {
    const bank = new EmbeddingBank({ dims: 2, capacity: 3 });
    bank.put('a', [1, 0]);
    bank.put('b', [0, 1]);
    bank.put('c', [1, 1]);
    expect(bank.put('a', [0, 2])).toBe(0); // refresh: same slot, still the oldest
    expect([...bank.get('a')!]).toEqual([0, 1]);
    bank.put('d', [3, 0]);
    expect(bank.has('a')).toBe(false);
    expect(bank.slotOf('d')).toBe(0);
    bank.put('e', [0, 3]);
    expect(bank.has('b')).toBe(false);
    expect([0, 1, 2].map((s) => bank.idAt(s))).toEqual(['d', 'e', 'c']);
    expect(bank.size).toBe(3);
    expect([...bank.get(1)!]).toEqual([0, 1]);
  });

  it.each(precisions)('putBatch stores exactly what put does (%s)', (precision) => {
    const ids = Array.from({ length: 40 }, (_, i) => `s${i % 30}`); // repeats refresh in place
    const rows = randomRows(40, 16, 3);
    const one = new EmbeddingBank({ dims: 16, capacity: 25, precision });
    const batched = new EmbeddingBank({ dims: 16, capacity: 25, precision });
    ids.forEach((id, i) => one.put(id, rows.subarray(i * 16, i * 16 + 16)));
    batched.putBatch(ids, rows);
    expect(batched.snapshot()).toEqual(one.snapshot());
    expect(batched.size).toBe(25);
  });

  it('snapshots rows with the id of each, unaffected by later writes', () => {
    const bank = new EmbeddingBank({ dims: 3, capacity: 2 });
    bank.put('x', [2, 0, 0]);
    bank.put('y', [0, 0, 5]);
    const snap = bank.snapshot();
    bank.put('z', [0, 1, 0]); // evicts x
    expect(snap.ids).toEqual(['x', 'y']);
    expect([...snap.rows]).toEqual([1, 0, 0, 0, 0, 1]);
    expect(snap.dims).toBe(3);
    expect(bank.idAt(0)).toBe('z');
  });

  it.each(precisions)('exports and restores its state bit for bit, ring position included (%s)', (precision) => {
    const a = new EmbeddingBank({ dims: 8, capacity: 10, precision });
    const rows = randomRows(25, 8, 5);
    a.putBatch(
      Array.from({ length: 13 }, (_, i) => `s${i}`),
      rows.subarray(0, 13 * 8),
    ); // full, wrapped: the next new id overwrites slot 3
    const state = a.exportState();
    expect(state).toMatchObject({ dims: 8, capacity: 10, precision, cursor: 3 });
    expect(state.ids).toHaveLength(10);
    const b = new EmbeddingBank({ dims: 8, capacity: 10, precision });
    b.put('stale', [1, 0, 0, 0, 0, 0, 0, 0]);
    b.restore(state);
    expect(b.has('stale')).toBe(false);
    expect(b.snapshot()).toEqual(a.snapshot());
    // Both go on the same way: the same slots evicted, the same values stored.
    const more = Array.from({ length: 12 }, (_, i) => `t${i}`);
    a.putBatch(more, rows.subarray(13 * 8, 25 * 8));
    b.putBatch(more, rows.subarray(13 * 8, 25 * 8));
    expect(b.snapshot()).toEqual(a.snapshot());
    expect(b.exportState()).toEqual(a.exportState());
    // A copy: writing the bank later leaves an exported state as it was.
    expect(state.ids[3]).toBe('s3');
  });

  it('restores a partly filled bank, and refuses a state of another shape or storage, naming it', () => {
    const a = new EmbeddingBank({ dims: 2, capacity: 4 });
    a.put('x', [3, 4]);
    const b = new EmbeddingBank({ dims: 2, capacity: 4 });
    b.restore(a.exportState());
    expect(b.size).toBe(1);
    b.put('y', [0, 1]);
    expect(b.slotOf('y')).toBe(1);
    expect([...b.get('x')!]).toEqual([Math.fround(0.6), Math.fround(0.8)]);
    expect(() => new EmbeddingBank({ dims: 2, capacity: 8 }).restore(a.exportState())).toThrow('the saved bank has a capacity of 4, not 8');
    expect(() => new EmbeddingBank({ dims: 2, capacity: 4, precision: 'float16' }).restore(a.exportState())).toThrow(
      'float32 storage, not float16',
    );
    expect(() => new EmbeddingBank({ dims: 3, capacity: 4 }).restore(a.exportState())).toThrow('2 dims, not 3');
    expect(() => b.restore({ ...a.exportState(), cursor: 3 })).toThrow('next slot 3 does not fit 1 held of 4');
  });

  it('names the bad input', () => {
    expect(() => new EmbeddingBank({ dims: 0, capacity: 1 })).toThrow(/dims: expected a positive integer, got "0"/);
    expect(() => new EmbeddingBank({ dims: 4, capacity: 1.5 })).toThrow(/capacity/);
    const bank = new EmbeddingBank({ dims: 4, capacity: 2 });
    expect(() => bank.put('a', [1, 2, 3])).toThrow(/"a".*expected a vector of 4 dims, got 3/);
    expect(() => bank.put('a', [0, 0, 0, 0])).toThrow(/"a" has norm 0/);
    expect(() => bank.put('a', [NaN, 0, 0, 1])).toThrow(/"a" has norm NaN/);
    expect(() => bank.putBatch(['a', 'b'], new Float32Array(4))).toThrow(/expected 2 × 4 = 8 values/);
    expect(() => bank.get(0)).toThrow(/slot 0 is not held \(size 0\)/);
    expect(bank.get('missing')).toBeUndefined();
  });
});
