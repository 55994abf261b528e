import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RandomAccessSource } from '../datasets/source.js';
import type { ClusterIndex } from '../positives/cluster-index.js';
import { EmbeddingBank } from '../positives/index.js';
import { readableById } from '../positives/pair-by-id.js';
import { hasPositives, readPositives, writePositives, type PositivesState } from '../positives/checkpoint-codec.js';
import { Reclustering } from '../positives/reclustering.js';

const dims = 4;
/** Unit-ish rows in two clear groups: ids s0, s2, … near e0, s1, s3, … near e1. */
function embeddings(step: number, per = 4) {
  const ids = Array.from({ length: per }, (_, i) => `s${per * step + i}`);
  const rows = new Float32Array(per * dims);
  ids.forEach((_, i) => rows.set([i % 2 === 0 ? 1 : 0.1, i % 2 === 1 ? 1 : 0.1, 0.05 * step, 0.01 * i], i * dims));
  return { ids, rows, dims };
}
const options = { dims, bankSize: 16, clusters: 2, every: 2, lag: 1, anchorsPerStep: 2, steps: 10, seed: 3 } as const;
const assignmentsOf = (index: ClusterIndex | undefined) => (index ? index.ids.map((id) => `${id}:${index.clusterOf(id)}`) : undefined);

describe('positives checkpoint files', () => {
  it('round-trips a float16 bank, clusterings, rounds and reads, bit for bit, through an id table', () => {
    const bank = new EmbeddingBank({ dims: 3, capacity: 5, precision: 'float16' });
    ['a', 'b', 'c', 'd', 'e', 'f'].forEach((id, i) => bank.put(id, [1, i, -i]));
    const state: PositivesState = {
      step: 7,
      every: 2,
      lag: 1,
      clusters: 2,
      bank: bank.exportState(),
      clusterings: [
        {
          ids: ['b', 'c', 'd'],
          assignments: Int32Array.from([0, 1, 1]),
          centroids: Float32Array.from([1, 0, 0, 0, 1, 0]),
          dims: 3,
          slot: 1,
        },
      ],
      rounds: [
        { round: 2, clustering: null },
        { round: 3, clustering: 0 },
      ],
      latest: 0,
      pending: { round: 3, slot: 0 },
      firstServedBatch: 5,
      counts: { reclusters: 1, pairs: 28, selfPairs: 12, pairsAfter: 8, selfPairsAfter: 1, centroidAnchors: 3 },
      reads: { ids: ['c', 'x', 'f'], indices: Int32Array.from([2, 40, 5]) },
    };
    const dir = mkdtempSync(join(tmpdir(), 'densestream-positives-'));
    expect(hasPositives(dir)).toBe(false);
    writePositives(dir, state);
    expect(readdirSync(dir).sort()).toEqual(['positives.bin', 'positives.json']); // no temporary file left
    const back = readPositives(dir);
    expect(back).toEqual(state);
    expect(back.bank.data).toBeInstanceOf(Uint16Array);
    const restored = new EmbeddingBank({ dims: 3, capacity: 5, precision: 'float16' });
    restored.restore(back.bank);
    expect(restored.snapshot()).toEqual(bank.snapshot());
  });

  it('readableById remembers the reads it is given back, oldest first, within its capacity', async () => {
    const source: RandomAccessSource = { name: 'toy', size: 100, id: (i) => `t${i}`, read: async (i) => ({ id: `t${i}` }) };
    const a = readableById(source, 3);
    for (const i of [5, 6, 7, 5, 8]) await a.source.read(i);
    expect(a.entries()).toEqual({ ids: ['t7', 't5', 't8'], indices: Int32Array.from([7, 5, 8]) });
    const b = readableById(source, 2);
    b.restore(a.entries());
    expect(b.entries().ids).toEqual(['t5', 't8']);
    await expect(b.readById('t8')).resolves.toEqual({ id: 't8' });
    await expect(b.readById('t7')).rejects.toThrow('t7 is no longer among the last 2 samples read');
  });
});

describe('Reclustering checkpoint', () => {
  it('records a clustering started at the checkpoint’s step and re-runs it on restore: the resumed run serves the same clustering', async () => {
    const straight = new Reclustering(options);
    for (let i = 0; i < 4; i++) await straight.nextAnchor().clustering; // batches 0–1: nothing yet
    await straight.afterStep(1, embeddings(0), embeddings(0).ids);
    await straight.afterStep(2, embeddings(1), embeddings(1).ids); // clusters the 8 embeddings, serves batch 3 on
    const state = await straight.checkpointState(2);
    expect(state).toMatchObject({ step: 2, pending: { round: 1, slot: 0 }, latest: null, rounds: [] });
    expect(state.bank.ids).toHaveLength(8);

    const dir = mkdtempSync(join(tmpdir(), 'densestream-recluster-'));
    writePositives(dir, state);
    const resumed = new Reclustering({ ...options, startStep: 2 });
    resumed.restore(readPositives(dir));
    // Batch 2 is served by no clustering in either; batch 3 by the clustering after step 2.
    const take = async (r: Reclustering) => {
      const out: Array<string[] | undefined> = [];
      for (let i = 0; i < 4; i++) out.push(assignmentsOf(await r.nextAnchor().clustering));
      return out;
    };
    await straight.afterStep(3, embeddings(2), embeddings(2).ids);
    await resumed.afterStep(3, embeddings(2), embeddings(2).ids);
    const [a, b] = await Promise.all([take(straight), take(resumed)]);
    expect(a.slice(0, 2)).toEqual([undefined, undefined]);
    expect(a[2]).toHaveLength(8);
    expect(b).toEqual(a);
    expect(resumed.stats()).toMatchObject({ reclusters: 1, bank: 12, pairs: 6 });

    // A checkpoint after a step with no clustering starting waits for nothing and records none in flight.
    const later = await straight.checkpointState(3);
    expect(later.pending).toBeUndefined();
    expect(later).toMatchObject({ latest: 0, rounds: [{ round: 1, clustering: 0 }] });
    expect(later.clusterings[0]!.centroids).toHaveLength(2 * dims);
    straight.close();
    resumed.close();
  });

  it('waits for a clustering started before the checkpoint’s step, and stores its result', async () => {
    const r = new Reclustering(options);
    await r.afterStep(1, embeddings(0), embeddings(0).ids);
    await r.afterStep(2, embeddings(1), embeddings(1).ids); // the worker starts
    await r.afterStep(3, embeddings(2), embeddings(2).ids); // not a clustering step: nothing awaited
    const state = await r.checkpointState(3);
    expect(state.pending).toBeUndefined();
    expect(state).toMatchObject({ latest: 0, rounds: [{ round: 1, clustering: 0 }] });
    expect(state.clusterings[0]!.ids).toHaveLength(8); // the bank as it stood after step 2, not 3
    expect(state.bank.ids).toHaveLength(12);
    const resumed = new Reclustering({ ...options, startStep: 3 });
    resumed.restore(state);
    for (let i = 0; i < 6; i++) await r.nextAnchor().clustering; // batches 0–2
    expect(assignmentsOf(await resumed.nextAnchor().clustering)).toEqual(assignmentsOf(await r.nextAnchor().clustering)); // batch 3
    r.close();
    resumed.close();
  });

  it('refuses a saved state of another schedule, or taken at another step', async () => {
    const r = new Reclustering(options);
    await r.afterStep(1, embeddings(0), embeddings(0).ids);
    const state = await r.checkpointState(1);
    r.close();
    expect(() => new Reclustering({ ...options, startStep: 1, every: 4 }).restore(state)).toThrow(/reclustering every 2 steps, not 4/);
    expect(() => new Reclustering({ ...options, startStep: 2 }).restore(state)).toThrow(/taken after step 1, the run resumes after 2/);
    expect(() => new Reclustering({ ...options, startStep: 1, bankSize: 32 }).restore(state)).toThrow(/capacity of 16, not 32/);
    expect(() => new Reclustering({ ...options, negatives: 16 })).toThrow(/negatives: expected an integer in \[0, bank size 16\)/);
    expect(() => new Reclustering({ ...options, lag: 3 })).toThrow(/lag: expected an integer in \[1, every = 2\]/);
  });
});
