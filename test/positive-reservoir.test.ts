import { concatMap, from, lastValueFrom, take } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { openSource } from '../pipelines/data-source.js';
import { reservoirPairs } from '../positives/pair-from-reservoir.js';
import type { PositiveSampling } from '../positives/run-positives.js';
import { trainBatches } from '../pipelines/train-batches.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { ClusterIndex } from '../positives/cluster-index.js';
import { POSITIVE_NOTES } from '../positives/cluster-positives.js';
import { PositiveReservoir } from '../positives/index.js';
import { SampleBudget } from '../operators/sample-budget.js';
import type { Sample } from '../core/index.js';
import { Reclustering, type AnchorEmbedder } from '../positives/reclustering.js';
import { collect } from './helpers/collect.js';
import { writeScenesTar } from './helpers/scenes-tar.js';

/** A decoded 2×2 grey sample `s{i}` whose label is its parity. */
const sample = (i: number): Sample => ({
  id: `s${i}`,
  pixels: { data: new Uint8Array([i, i, i, i]), width: 2, height: 2, channels: 1 },
  label: i % 2,
});

describe('PositiveReservoir', () => {
  it('never holds more than its capacity while 10× as many samples stream through, and keeps the newest, oldest first', () => {
    const r = new PositiveReservoir(7);
    let most = 0;
    for (let i = 0; i < 70; i++) {
      r.add({ ...sample(i), bytes: new Uint8Array(100), positive: 'x' });
      most = Math.max(most, r.size);
    }
    expect(most).toBe(7);
    expect(r.ids()).toEqual(['s63', 's64', 's65', 's66', 's67', 's68', 's69']);
    // Kept as a fetched positive would be read back: no encoded bytes, no positive of its own.
    const drawn = r.draw(new ClusterIndex(['s63'], Int32Array.from([0])), 0, 'other', () => 0)!;
    expect(drawn.id).toBe('s63');
    expect(drawn.bytes).toBeUndefined();
    expect(drawn.positive).toBeUndefined();
    expect(drawn.pixels).toBeDefined();
    expect(() => new PositiveReservoir(0)).toThrow('expected an integer ≥ 1, got 0');
  });

  it('draws uniformly among the members of one cluster, never the anchor; a placement counts only for its own clustering', () => {
    // The snapshot holds s0–s3 (cluster = parity); s4 and s5 came later and are placed by hand.
    const index = new ClusterIndex(['s0', 's1', 's2', 's3'], Int32Array.from([0, 1, 0, 1]), {
      rows: Float32Array.from([1, 0, 0, 1]),
      dims: 2,
    });
    const older = new ClusterIndex(['s0'], Int32Array.from([0]));
    const r = new PositiveReservoir(10);
    for (let i = 0; i < 6; i++) r.add(sample(i), i === 5 ? older : undefined, i === 5 ? 0 : undefined);
    expect(r.unplaced(index).map((s) => s.id)).toEqual(['s4', 's5']); // s5 was placed under another clustering
    r.place(
      index,
      new Map([
        ['s4', 0],
        ['s5', 1],
      ]),
    );
    expect(r.unplaced(index)).toEqual([]);
    expect(r.clusterOf('s5', index)).toBe(1);
    expect(r.clusterOf('s5', older)).toBeUndefined(); // the newer placement replaced it
    expect(r.membersOf(index, 0).map((s) => s.id)).toEqual(['s0', 's2', 's4']);
    expect(r.membersOf(index, 0, 's2').map((s) => s.id)).toEqual(['s0', 's4']);
    const counts = new Map<string, number>();
    let u = 0;
    for (let k = 0; k < 300; k++) {
      const id = r.draw(index, 0, 's2', () => (u = (u + 0.6180339887) % 1))!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['s0', 's4']);
    for (const c of counts.values()) expect(Math.abs(c - 150)).toBeLessThan(10);
    expect(r.draw(index, 1, 's1', () => 0.99)!.id).toBe('s5');
    expect(r.draw(new ClusterIndex(['s9'], Int32Array.from([0])), 0, 's9', () => 0)).toBeUndefined();
  });

  it('holds an id once: a sample added again replaces its member in place, so draws stay uniform over distinct samples', () => {
    const index = new ClusterIndex(['s0', 's2', 's4'], Int32Array.from([0, 0, 0]));
    const r = new PositiveReservoir(4);
    for (let epoch = 0; epoch < 3; epoch++) for (const i of [0, 2, 4]) r.add(sample(i)); // a stream of 3 samples, 3 epochs
    expect(r.size).toBe(3);
    expect(r.ids()).toEqual(['s0', 's2', 's4']);
    const counts = new Map<string, number>();
    let u = 0;
    for (let k = 0; k < 300; k++) {
      const id = r.draw(index, 0, 'anchor', () => (u = (u + 0.6180339887) % 1))!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['s0', 's2', 's4']);
    for (const c of counts.values()) expect(Math.abs(c - 100)).toBeLessThan(10);
    r.add(sample(6));
    r.add(sample(8)); // full: the oldest, s0, goes
    expect(r.ids()).toEqual(['s2', 's4', 's6', 's8']);
    expect(r.clusterOf('s0', index)).toBeUndefined();
    expect(r.clusterOf('s2', index)).toBe(0);
  });
});

describe('reservoirPairs', () => {
  // Two clusters by parity, centroids e0 and e1; a sample embeds to its parity's axis.
  const index = new ClusterIndex(['c0', 'c1'], Int32Array.from([0, 1]), { rows: Float32Array.from([1, 0, 0, 1]), dims: 2 });
  const embed = async (samples: readonly Sample[]) => samples.map((s) => Float32Array.from(s.label === 0 ? [1, 0] : [0, 1]));

  function pairs(capacity: number, n: number, clusteredFrom: number) {
    const reservoir = new PositiveReservoir(capacity);
    const notes: Array<[string, string]> = [];
    const embedded: string[][] = [];
    let position = 0;
    const nextAnchor = () => {
      const batch = Math.floor(position++ / 3);
      return { batch, clustering: Promise.resolve(batch >= clusteredFrom ? index : undefined) };
    };
    const out = collect(
      from(Array.from({ length: n }, (_, i) => sample(i))).pipe(
        reservoirPairs({
          nextAnchor,
          groupSize: 3,
          reservoir,
          seed: 5,
          epoch: 0,
          onNote: (id, reason) => notes.push([id, reason]),
          embed: async (s) => {
            embedded.push(s.map((x) => x.id));
            return embed(s);
          },
        }),
      ),
    );
    return out.then((emitted) => ({ emitted, notes, embedded, reservoir }));
  }

  it('pairs each anchor with an earlier sample of its cluster still in the reservoir, never itself, deterministically', async () => {
    const { emitted, notes, embedded, reservoir } = await pairs(4, 30, 2);
    expect(emitted).toHaveLength(60);
    expect(reservoir.size).toBe(4);
    for (let i = 0; i < 30; i++) {
      const anchor = emitted[2 * i]!;
      const positive = emitted[2 * i + 1]!;
      expect(anchor.id).toBe(`s${i}`);
      expect(anchor.positive).toBe(positive.id);
      if (i < 6) {
        expect(positive.id).toBe(anchor.id); // batches 0–1: no clustering yet
        continue;
      }
      // The reservoir of batch ⌊i/3⌋: the last 4 anchors of the batches before it.
      const batchStart = 3 * Math.floor(i / 3);
      const held = Array.from({ length: 4 }, (_, k) => `s${batchStart - 4 + k}`);
      const sameCluster = held.filter((id) => Number(id.slice(1)) % 2 === i % 2);
      if (sameCluster.length === 0) {
        expect(positive.id).toBe(anchor.id);
        expect(notes).toContainEqual([anchor.id, POSITIVE_NOTES.notInReservoir]);
      } else {
        expect(positive.id).not.toBe(anchor.id);
        expect(sameCluster).toContain(positive.id);
        expect(positive.label).toBe(anchor.label);
      }
    }
    expect(notes.filter(([, r]) => r === POSITIVE_NOTES.noClustering).map(([id]) => id)).toEqual(['s0', 's1', 's2', 's3', 's4', 's5']); // every such anchor, as positivePairs counts
    // The first clustered batch embeds its anchors and the 4 members the clustering cannot place in one call; later batches only their anchors.
    expect(embedded[0]).toEqual(['s6', 's7', 's8', 's2', 's3', 's4', 's5']);
    expect(embedded.slice(1).every((ids) => ids.length === 3)).toBe(true);
    const again = await pairs(4, 30, 2);
    expect(again.emitted.map((s) => s.id)).toEqual(emitted.map((s) => s.id));
  });
});

describe('train --method softrank on tar shards: the data plane', () => {
  let pattern: string;
  let labels: Map<string, number>;
  beforeAll(async () => {
    ({ pattern, labels } = await writeScenesTar(2, 24, 32));
  });

  it('pairs each stream anchor, once clustered, with a reservoir member of its cluster, never itself, and keeps the reservoir bounded', async () => {
    const R = 6;
    const steps = 10;
    const { resume: _r, ...c } = parseTrainConfig([
      '--method',
      'softrank',
      '--data',
      `tar:${pattern}`,
      '--size',
      '32',
      '--batch',
      '8',
      '--steps',
      String(steps),
      '--recluster-every',
      '2',
      '--clusters',
      '2',
      '--reservoir',
      String(R),
      '--out',
      'unused',
    ]);
    // Embeddings by label parity (the bank's and the frozen copy's alike): k-means with k = 2 finds the parity classes.
    const dims = 4;
    const vector = (id: string): Float32Array => {
      const v = new Float32Array(dims);
      v[labels.get(id)! % 2] = 1;
      v[2] = 0.001 * Number(id.slice(-1)); // ids differ a little, as real embeddings do
      return v;
    };
    const embedder: AnchorEmbedder = { freeze: () => undefined, embed: async (samples) => samples.map((s) => vector(s.id)) };
    const reclustering = new Reclustering({
      dims,
      bankSize: 256,
      clusters: 2,
      every: 2,
      lag: 1,
      anchorsPerStep: 4,
      steps,
      seed: 0,
      anchors: embedder,
    });
    const reservoir = new PositiveReservoir(R);
    const positives: PositiveSampling = { reclustering, reservoir };
    const budget = new SampleBudget(3 * 4 + 16);
    const source = await openSource(c.data);
    const anchorsBefore: string[] = [];
    const sizes: number[] = [];
    let clustered = 0;
    let step = 0;
    try {
      // As the trainer does: a batch is checked, released and fed to the bank before the next is taken.
      await lastValueFrom(
        trainBatches(c, source, budget, () => undefined, { positives }).pipe(
          take(steps),
          concatMap(async (b) => {
            step++;
            sizes.push(reservoir.size);
            const held = anchorsBefore.slice(-R);
            for (let i = 0; i < b.ids.length; i += 2) {
              const anchor = b.ids[i]!;
              const positive = b.ids[i + 1]!;
              if (step < 4)
                expect(positive).toBe(anchor); // the first clustering (after step 2) serves from step 4
              else if (positive !== anchor) {
                clustered++;
                expect(held).toContain(positive);
                expect(labels.get(positive)! % 2).toBe(labels.get(anchor)! % 2);
              }
            }
            for (let i = 0; i < b.ids.length; i += 2) anchorsBefore.push(b.ids[i]!);
            budget.release(b.ids.length / 2);
            const rows = new Float32Array(b.ids.length * dims);
            b.ids.forEach((id, i) => rows.set(vector(id), i * dims));
            await reclustering.afterStep(step, { ids: [...b.ids], rows, dims }, b.ids);
          }),
        ),
      );
    } finally {
      reclustering.close();
    }
    expect(step).toBe(steps);
    expect(new Set(anchorsBefore).size).toBe(steps * 4); // a stream: every anchor is new
    expect(clustered).toBeGreaterThan(steps); // most of the 28 anchors of steps 4–10 found a cluster mate among 6
    expect(Math.max(...sizes)).toBe(R);
    expect(reclustering.stats()).toMatchObject({ reclusters: 4, firstClusteredStep: 4 });
  });

  it('--negatives: draws each pair’s negatives outside the cluster its anchor was placed in, even when the live target has drifted', async () => {
    const steps = 8;
    const dims = 3;
    const { resume: _r, ...c } = parseTrainConfig([
      '--method',
      'softrank',
      '--data',
      `tar:${pattern}`,
      '--size',
      '32',
      '--batch',
      '8',
      '--steps',
      String(steps),
      '--recluster-every',
      '2',
      '--clusters',
      '2',
      '--reservoir',
      '6',
      '--negatives',
      '2',
      '--out',
      'unused',
    ]);
    const parity = (id: string) => labels.get(id)! % 2;
    /** The bank's and the frozen copy's embedding: the label parity's axis; `drifted`: the other axis (the live target's space has moved). */
    const vector = (id: string, drifted = false): Float32Array => {
      const v = new Float32Array(dims);
      v[drifted ? 1 - parity(id) : parity(id)] = 1;
      v[2] = 0.001 * Number(id.slice(-1));
      return v;
    };
    const embedder: AnchorEmbedder = { freeze: () => undefined, embed: async (samples) => samples.map((s) => vector(s.id)) };
    const reclustering = new Reclustering({
      dims,
      bankSize: 256,
      clusters: 2,
      every: 2,
      lag: 1,
      anchorsPerStep: 4,
      steps,
      seed: 0,
      anchors: embedder,
      negatives: 2,
    });
    const positives: PositiveSampling = { reclustering, reservoir: new PositiveReservoir(6) };
    const budget = new SampleBudget(3 * 4 + 16);
    let checked = 0;
    let step = 0;
    try {
      await lastValueFrom(
        trainBatches(c, await openSource(c.data), budget, () => undefined, { positives }).pipe(
          take(steps),
          concatMap(async (b) => {
            step++;
            const rowsOf = (drifted: boolean) => {
              const rows = new Float32Array(b.ids.length * dims);
              b.ids.forEach((id, i) => rows.set(vector(id, drifted), i * dims));
              return rows;
            };
            const negatives = reclustering.negatives(b.ids, rowsOf(true), dims); // as the loss asks, with this step's (drifted) target z
            if (step >= 4) expect(negatives).toBeDefined();
            for (let p = 0; negatives && p < b.ids.length / 2; p++) {
              for (let k = 0; k < 2; k++) {
                const row = negatives.subarray((2 * p + k) * dims, (2 * p + k + 1) * dims);
                expect(row[0]! > row[1]! ? 0 : 1, `step ${step}, pair ${b.ids[2 * p]}`).not.toBe(parity(b.ids[2 * p]!));
                checked++;
              }
            }
            budget.release(b.ids.length / 2);
            await reclustering.afterStep(step, { ids: [...b.ids], rows: rowsOf(false), dims }, b.ids);
          }),
        ),
      );
    } finally {
      reclustering.close();
    }
    expect(checked).toBe((steps - 3) * 4 * 2);
  });
});
