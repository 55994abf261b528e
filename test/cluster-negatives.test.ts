import { describe, expect, it } from 'vitest';
import { ClusterIndex } from '../positives/cluster-index.js';
import { drawNegatives, EmbeddingBank } from '../positives/index.js';

/** 40 ids in 4 clusters of 10 (id i in cluster i % 4), each with a distinct unit vector in the bank. */
function setup(capacity = 40) {
  const ids = Array.from({ length: 40 }, (_, i) => `s${i}`);
  const index = new ClusterIndex(
    ids,
    Int32Array.from(ids, (_, i) => i % 4),
  );
  const bank = new EmbeddingBank({ dims: 3, capacity });
  ids.forEach((id, i) => bank.put(id, [Math.cos(i), Math.sin(i), 0.5]));
  return { ids, index, bank };
}

describe('drawNegatives', () => {
  it('never draws from the pair’s cluster; K distinct ids a pair, with their bank vectors', () => {
    const { index, bank } = setup();
    const pairs = [0, 1, 2, 3, 1].map((cluster, p) => ({ key: `anchor${p}`, cluster }));
    for (let step = 0; step < 50; step++) {
      const drawn = drawNegatives(index, bank, pairs, 7, 1, step)!;
      expect(drawn.short).toBe(0);
      expect(drawn.rows).toHaveLength(5 * 7 * 3);
      pairs.forEach(({ cluster }, p) => {
        const mine = drawn.ids.slice(p * 7, p * 7 + 7);
        expect(new Set(mine).size).toBe(7);
        for (const [k, id] of mine.entries()) {
          expect(index.clusterOf(id)).not.toBe(cluster);
          expect([...drawn.rows.subarray((p * 7 + k) * 3, (p * 7 + k + 1) * 3)]).toEqual([...bank.get(id)!]);
        }
      });
    }
  });

  it('draws uniformly over the other clusters, and the same for the same seed, step and anchor', () => {
    const { index, bank } = setup();
    const counts = new Map<string, number>();
    for (let step = 0; step < 3000; step++) {
      for (const id of drawNegatives(index, bank, [{ key: 'a', cluster: 2 }], 1, 5, step)!.ids) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(counts.size).toBe(30);
    for (const c of counts.values()) expect(Math.abs(c - 100)).toBeLessThan(50); // ~5 σ
    const once = drawNegatives(index, bank, [{ key: 'a', cluster: 2 }], 4, 5, 9)!;
    expect(drawNegatives(index, bank, [{ key: 'a', cluster: 2 }], 4, 5, 9)).toEqual(once);
    expect(drawNegatives(index, bank, [{ key: 'a', cluster: 2 }], 4, 5, 10)!.ids).not.toEqual(once.ids);
  });

  it('skips ids that left the bank since the clustering, and repeats when fewer than K are left', () => {
    const { index, bank } = setup(34);
    // A ring of 34: s0 … s5 were overwritten by s34 … s39 — hence 6 ids of the clustering are gone.
    for (let step = 0; step < 30; step++) {
      const drawn = drawNegatives(index, bank, [{ key: 'a', cluster: 0 }], 5, 2, step)!;
      for (const id of drawn.ids) {
        expect(bank.has(id)).toBe(true);
        expect(index.clusterOf(id)).not.toBe(0);
      }
    }
    // Clusters 1–3 hold 30 ids, 26 of them still in the bank (s1, s2, s3, s5 are gone): K = 28 repeats two.
    const drawn = drawNegatives(index, bank, [{ key: 'a', cluster: 0 }], 28, 2, 0)!;
    expect(drawn.short).toBe(1);
    expect(new Set(drawn.ids).size).toBe(26);
    expect(drawn.ids.slice(26)).toEqual(drawn.ids.slice(0, 2));
    expect([...drawn.rows.subarray(26 * 3, 28 * 3)]).toEqual([...drawn.rows.subarray(0, 2 * 3)]);
    expect(() => drawNegatives(index, bank, [], 0, 2, 0)).toThrow(/count: expected an integer ≥ 1/);
  });

  it('gives up (undefined) when a pair has no other cluster in the bank', () => {
    const one = new ClusterIndex(['a', 'b'], Int32Array.from([0, 0]));
    const bank = new EmbeddingBank({ dims: 2, capacity: 4 });
    bank.put('a', [1, 0]);
    expect(drawNegatives(one, bank, [{ key: 'a', cluster: 0 }], 1, 0, 0)).toBeUndefined();
  });
});
