/**
 * The positives' one operator for a training stream: each decoded anchor followed by its
 * positive, before the views are cut. Where the positive comes from is the source's to say: a
 * random-access source reads it again by id (`pair-by-id.ts`), a stream takes it from a
 * reservoir of its recent samples (`pair-from-reservoir.ts`). Without a run's clusterings every
 * anchor is its own positive.
 */
import type { OperatorFunction } from 'rxjs';
import { isRandomAccess, type Source } from '../datasets/source.js';
import type { Sample, SkipRecord } from '../core/index.js';
import type { ClusterIndex } from './cluster-index.js';
import { positivePairs, readableById } from './pair-by-id.js';
import { reservoirPairs } from './pair-from-reservoir.js';
import type { NextAnchor } from './pairing.js';
import { PositiveReservoir } from './reservoir.js';
import type { PositiveSampling } from './run-positives.js';

export interface PairPositivesOptions {
  /** The run's clusterings and where positives are read again (`openPositives`); without it every anchor is its own positive. */
  positives?: PositiveSampling | undefined;
  /** Anchors a batch holds, B/2. */
  anchorsPerBatch: number;
  seed: number;
  /** Decodes (and masks) a positive read again by id, as the anchors were. */
  prepare: (sample: Sample) => Promise<Sample>;
  /** Hears a positive that could not be read again (its anchor becomes its own positive). */
  record: (r: SkipRecord) => void;
}

/**
 * The source to read anchors from (for a random-access one, wrapped so that reads are
 * remembered and a positive can be read again by id), and the pairing operator of each epoch.
 */
export function pairPositives(
  read: Source,
  o: PairPositivesOptions,
): { read: Source; pairs: (epoch: number) => OperatorFunction<Sample, Sample> } {
  const reclustering = o.positives?.reclustering;
  const nextAnchor: NextAnchor = reclustering
    ? () => reclustering.nextAnchor()
    : () => ({ batch: 0, clustering: Promise.resolve(undefined) });
  const embed = reclustering ? (samples: readonly Sample[], index: ClusterIndex) => reclustering.embedNew(samples, index) : undefined;
  const onCluster = (batch: number, id: string, cluster: number) => reclustering?.notePairCluster(batch, id, cluster);
  const common = { nextAnchor, groupSize: o.anchorsPerBatch, seed: o.seed, onCluster, ...(embed ? { embed } : {}) };
  if (!isRandomAccess(read)) {
    const reservoir = o.positives?.reservoir ?? new PositiveReservoir(1); // no clustering: every anchor is its own positive
    const onNote = (_id: string, reason: string) => reclustering?.noteSelf(reason);
    return { read, pairs: (epoch) => reservoirPairs({ ...common, reservoir, epoch, onNote }) };
  }
  const byId = o.positives?.byId ?? readableById(read, 0); // no clustering: every anchor is its own positive, nothing is read again
  const fetch = async (id: string) => o.prepare(await byId.readById(id));
  const onNote = (id: string, reason: string) => {
    reclustering?.noteSelf(reason);
    if (reason.startsWith('fetch failed')) o.record({ id, stage: 'positive', reason });
  };
  return { read: byId.source, pairs: (epoch) => positivePairs({ ...common, fetch, epoch, onNote }) };
}
