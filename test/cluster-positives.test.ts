import { from } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ClusterIndex } from '../positives/cluster-index.js';
import { choosePositive, clusterPositives, POSITIVE_NOTES, type ClusterPositivesOptions } from '../positives/cluster-positives.js';
import { keyedRng, type Sample } from '../core/index.js';
import { collect } from './helpers/collect.js';

/** A decoded 2×2 grey sample named `s{i}`. */
const sample = (i: number): Sample => ({
  id: `s${i}`,
  pixels: { data: new Uint8Array([i, i, i, i]), width: 2, height: 2, channels: 1 },
  label: i % 3,
});
const samples = Array.from({ length: 12 }, (_, i) => sample(i));
const ids = samples.map((s) => s.id);
/** Clusters: {0, 3, 6, 9}, {1, 4, 7, 10}, {2, 5, 8}, and 11 alone. */
const assignments = Int32Array.from(ids.map((_, i) => (i === 11 ? 3 : i % 3)));
const index = new ClusterIndex(ids, assignments);
const fetchSample = async (id: string): Promise<Sample> => sample(Number(id.slice(1)));

function run(options: Partial<ClusterPositivesOptions> = {}, input = samples) {
  const notes: Array<[string, string]> = [];
  const out = collect(
    from(input).pipe(
      clusterPositives({
        clusters: () => index,
        fetch: fetchSample,
        seed: 7,
        onNote: (id, reason) => notes.push([id, reason]),
        ...options,
      }),
    ),
  );
  return out.then((emitted) => ({ emitted, notes }));
}

describe('ClusterIndex', () => {
  it('lists the members of an id’s cluster, itself included', () => {
    expect(index.size).toBe(12);
    expect(index.clusterCount).toBe(4);
    expect(index.members('s4')!.sort()).toEqual(['s1', 's10', 's4', 's7']);
    expect(index.members('s11')).toEqual(['s11']);
    expect(index.members('nope')).toBeUndefined();
    expect(index.clusterOf('s5')).toBe(2);
    expect(index.clusterSize(2)).toBe(3);
    expect(index.clusterSize(9)).toBe(0);
  });

  it('draws every other member of the cluster about equally often, never the anchor', () => {
    const counts = new Map<string, number>();
    const rng = keyedRng(1, 'draws');
    for (let i = 0; i < 3000; i++) {
      const id = index.drawOther('s3', rng.next)!;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['s0', 's6', 's9']);
    for (const c of counts.values()) expect(Math.abs(c - 1000)).toBeLessThan(120); // ~5 σ
    expect(index.drawOther('s11', rng.next)).toBe('s11');
    expect(index.drawOther('nope', rng.next)).toBeUndefined();
  });

  it('indexes 300 000 ids in well under a few seconds (one counting sort)', () => {
    const n = 300_000;
    const many = Array.from({ length: n }, (_, i) => `id${i}`);
    const a = new Int32Array(n).map((_, i) => (i * 7919) % 1000);
    const t0 = performance.now();
    const big = new ClusterIndex(many, a);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(big.clusterSize(0)).toBe(300);
  });

  it('refuses mismatched lengths, repeated ids and clusters out of range', () => {
    expect(() => new ClusterIndex(['a', 'b'], Int32Array.from([0]))).toThrow(/2 ids but 1 assignments/);
    expect(() => new ClusterIndex(['a', 'a'], Int32Array.from([0, 1]))).toThrow(/"a" appears twice/);
    expect(() => new ClusterIndex(['a', 'b'], Int32Array.from([0, 5]))).toThrow(/cluster 5/);
    expect(() => new ClusterIndex(['a', 'b'], Int32Array.from([-1, 0]))).toThrow(/cluster -1/);
  });
});

describe('ClusterIndex with centroids: placing an id it does not hold', () => {
  // 2-d centroids at 0°, 90°, 180°; cluster 3 (s11 alone) sits at 270°.
  const centroids = Float32Array.from([1, 0, 0, 1, -1, 0, 0, -1]);
  const placed = new ClusterIndex(ids, assignments, { rows: centroids, dims: 2 });

  it('finds the nearest centroid by dot product, skipping empty clusters', () => {
    expect(placed.nearestCluster([0.9, 0.1])).toBe(0);
    expect(placed.nearestCluster([0.6, 0.8])).toBe(1);
    expect(placed.nearestCluster([-0.8, -0.6])).toBe(2);
    expect(placed.nearestCluster([0.1, -0.99])).toBe(3);
    // A fifth centroid nobody is assigned to is never chosen, however near.
    const withEmpty = new ClusterIndex(ids, assignments, { rows: Float32Array.from([...centroids, 0.6, 0.8]), dims: 2 });
    expect(withEmpty.nearestCluster([0.6, 0.8])).toBe(1);
    expect(() => index.nearestCluster([1, 0])).toThrow(/without its centroids/);
    expect(() => placed.nearestCluster([1, 0, 0])).toThrow(/3 dims; the centroids have 2/);
    expect(() => new ClusterIndex(ids, assignments, { rows: Float32Array.from([1, 0, 0, 1]), dims: 2 })).toThrow(
      /2 centroids for clusters up to 3/,
    );
  });

  it('gives a new anchor with an embedding a positive from its nearest centroid’s cluster, uniformly, seeded', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const choice = choosePositive(placed, `new${i}`, 3, 0, [0.6, 0.8]);
      expect(choice.note).toBeUndefined();
      expect(choice.nearestCluster).toBe(1);
      counts.set(choice.id, (counts.get(choice.id) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['s1', 's10', 's4', 's7']);
    for (const c of counts.values()) expect(Math.abs(c - 500)).toBeLessThan(110); // ~5 σ
    expect(choosePositive(placed, 'new1', 3, 0, [0.6, 0.8])).toEqual(choosePositive(placed, 'new1', 3, 0, [0.6, 0.8]));
    // Held ids keep their own cluster, whatever embedding comes with them; without one a new anchor is its own positive.
    expect(placed.clusterOf(choosePositive(placed, 's0', 3, 0, [0, 1]).id)).toBe(0);
    expect(choosePositive(placed, 'new1', 3, 0)).toEqual({ id: 'new1', note: POSITIVE_NOTES.notClustered });
    expect(choosePositive(index, 'new1', 3, 0, [0.6, 0.8])).toEqual({ id: 'new1', note: POSITIVE_NOTES.notClustered });
  });

  it('lists the ids outside a cluster, each once', () => {
    for (let c = 0; c < 5; c++) {
      const outside = Array.from({ length: placed.outsideCount(c) }, (_, j) => placed.idOutside(c, j));
      expect(outside.sort()).toEqual(ids.filter((id) => placed.clusterOf(id) !== c).sort());
    }
    expect(() => placed.idOutside(0, 8)).toThrow(RangeError);
  });

  it('clusterPositives embeds only the anchors the clustering does not hold, and pairs them by their nearest centroid', async () => {
    const embedded: string[] = [];
    const embed = async (anchor: Sample) => {
      embedded.push(anchor.id);
      return Float32Array.from([0, 1]); // nearest: cluster 1
    };
    const fresh = [sample(20), sample(0), sample(21)].map((s, i) => ({ ...s, id: i === 1 ? 's0' : `new${i}` }));
    const { emitted, notes } = await run({ clusters: () => placed, embed }, fresh);
    expect(embedded).toEqual(['new0', 'new2']);
    expect(notes).toEqual([]);
    expect(placed.clusterOf(emitted[1]!.id)).toBe(1);
    expect(placed.clusterOf(emitted[3]!.id)).toBe(0);
    expect(placed.clusterOf(emitted[5]!.id)).toBe(1);
    const failing = await run({ clusters: () => placed, embed: () => Promise.reject(new Error('boom')) }, [fresh[0]!]);
    expect(failing.emitted.map((s) => s.id)).toEqual(['new0', 'new0']);
    expect(failing.notes[0]![1]).toContain('its embedding failed: boom');
  });
});

describe('clusterPositives', () => {
  it('emits each anchor then its positive, drawn from the anchor’s cluster and never the anchor itself', async () => {
    const { emitted, notes } = await run({}, samples.slice(0, 11));
    expect(emitted).toHaveLength(22);
    for (let i = 0; i < 22; i += 2) {
      const anchor = emitted[i]!;
      const positive = emitted[i + 1]!;
      expect(anchor.id).toBe(`s${i / 2}`); // input order kept
      expect(anchor.positive).toBe(positive.id);
      expect(positive.id).not.toBe(anchor.id);
      expect(index.clusterOf(positive.id)).toBe(index.clusterOf(anchor.id));
      expect(positive.pixels).toBeDefined();
    }
    expect(notes).toEqual([]);
  });

  it('pairs a singleton with itself, noted', async () => {
    const { emitted, notes } = await run({}, [sample(11)]);
    expect(emitted.map((s) => s.id)).toEqual(['s11', 's11']);
    expect(emitted[0]!.positive).toBe('s11');
    expect(emitted[1]!.positive).toBeUndefined();
    expect(emitted[0]).not.toBe(emitted[1]);
    expect(notes).toEqual([['s11', 'singleton cluster']]);
  });

  it('is deterministic for a seed and epoch, and draws afresh for another epoch', async () => {
    const positives = async (o: Partial<ClusterPositivesOptions>) => (await run(o)).emitted.filter((_, i) => i % 2 === 1).map((s) => s.id);
    const a = await positives({ seed: 7, epoch: 0 });
    expect(await positives({ seed: 7, epoch: 0 })).toEqual(a);
    expect(await positives({ seed: 7, epoch: 1 })).not.toEqual(a);
    expect(await positives({ seed: 8, epoch: 0 })).not.toEqual(a);
    // The operator's rule is choosePositive's.
    expect(a).toEqual(ids.map((id) => choosePositive(index, id, 7, 0).id));
  });

  it('before any clustering, pairs each anchor with itself and notes it once', async () => {
    const { emitted, notes } = await run({ clusters: () => undefined }, samples.slice(0, 4));
    expect(emitted.map((s) => s.id)).toEqual(['s0', 's0', 's1', 's1', 's2', 's2', 's3', 's3']);
    expect(notes).toEqual([['s0', 'no clustering yet: positive is the other view of the same image']]);
  });

  it('reads the latest clustering as each anchor arrives', async () => {
    let latest: ClusterIndex | undefined;
    const seen: string[] = [];
    const stream = from(samples.slice(0, 4)).pipe(
      clusterPositives({
        clusters: () => {
          const current = latest;
          latest = index; // the first anchor sees none; the rest see the index
          return current;
        },
        fetch: async (id) => {
          seen.push(id);
          return fetchSample(id);
        },
      }),
    );
    const emitted = await collect(stream);
    expect(emitted[1]!.id).toBe('s0');
    expect(seen).toHaveLength(3);
  });

  it('pairs an anchor with itself when the fetch fails or returns no pixels, noting why', async () => {
    const fetch = async (id: string): Promise<Sample> => {
      if (id === 's3') throw new Error('disk on fire');
      if (id === 's6') return { id };
      return fetchSample(id);
    };
    const { emitted, notes } = await run(
      { fetch, clusters: () => new ClusterIndex(['s0', 's3', 's1', 's6'], Int32Array.from([0, 0, 1, 1])) },
      [sample(0), sample(1)],
    );
    expect(emitted.map((s) => s.id)).toEqual(['s0', 's0', 's1', 's1']);
    expect(notes.map(([id]) => id)).toEqual(['s0', 's1']);
    expect(notes[0]![1]).toContain(POSITIVE_NOTES.fetchFailed);
    expect(notes[0]![1]).toContain('disk on fire');
    expect(notes[1]![1]).toContain('no decoded pixels');
  });

  it('keeps input order with slow, out-of-order fetches, and at most `concurrency` in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const fetch = async (id: string): Promise<Sample> => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, (Number(id.slice(1)) * 7) % 11));
      inFlight--;
      return fetchSample(id);
    };
    const { emitted } = await run({ fetch, concurrency: 3 }, samples.slice(0, 11));
    expect(emitted.filter((_, i) => i % 2 === 0).map((s) => s.id)).toEqual(ids.slice(0, 11));
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(1);
  });
});
