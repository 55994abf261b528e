/**
 * softrank's clustering positives in a checkpoint: the embedding bank, the clusterings still
 * serving batches, the reclustering schedule and the source positions positives are read from,
 * so that a resumed run pairs, draws and clusters exactly as the uninterrupted one.
 *
 * Two files beside the weights, in the checkpoint folder the trainer writes under a temporary
 * name and swaps in whole: `positives.bin`, the arrays back to back (each 8-byte aligned), and
 * `positives.json`, the scalars, one table of the distinct ids (a bank, its clusterings and the
 * read positions share most of theirs) and where each array lies in the .bin. Each file is also
 * written to a temporary name and renamed; `positives.json` last, so its presence means both
 * are whole.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FrozenSlot } from '../methods/softrank.js';
import type { EmbeddingBankState } from './embedding-bank.js';
import { writeFileAtomic } from '../core/atomic-file.js';

export const POSITIVES_JSON = 'positives.json';
export const POSITIVES_BIN = 'positives.bin';

/** A slot of softrank's frozen target copies. */
export type Slot = FrozenSlot;

/** One clustering of the bank, with the frozen target copy that embeds its new anchors. */
export interface ClusteringState {
  ids: string[];
  assignments: Int32Array;
  /** `[k, dims]` unit centroids. */
  centroids: Float32Array;
  dims: number;
  slot: Slot;
}

/**
 * Counters of the positive statistics, carried across a resume so the summary covers the whole
 * run. All count trained pairs, so they follow from the step (the notes of self-pairs count
 * anchors paired, ahead of training, and are not carried).
 */
export interface PositiveCounts {
  reclusters: number;
  pairs: number;
  selfPairs: number;
  pairsAfter: number;
  selfPairsAfter: number;
  centroidAnchors: number;
}

export interface PositivesState {
  /** Steps done when it was taken. */
  step: number;
  /** The schedule it was taken under; a resume with another is refused. */
  every: number;
  lag: number;
  clusters: number;
  bank: EmbeddingBankState;
  clusterings: ClusteringState[];
  /** Rounds decided and still serving batches: the clustering each one serves (an index into `clusterings`), or null for none yet. */
  rounds: Array<{ round: number; clustering: number | null }>;
  /** The newest clustering (the next one starts from its centroids), or null. */
  latest: number | null;
  /** A clustering started at `step` and not finished then: re-run at resume from the restored bank, which is its snapshot. */
  pending?: { round: number; slot: Slot };
  /** The first batch (0-based) a clustering served, or null. */
  firstServedBatch: number | null;
  counts: PositiveCounts;
  /** The source positions positives are read again from: id → index, oldest read first. */
  reads?: { ids: string[]; indices: Int32Array };
}

type Dtype = 'float32' | 'int32' | 'uint16';
interface Section {
  dtype: Dtype;
  offset: number;
  length: number;
}
type Stored = Float32Array | Int32Array | Uint16Array;

interface PositivesJson {
  format: 'densestream-positives';
  version: 1;
  step: number;
  every: number;
  lag: number;
  clusters: number;
  bank: { dims: number; capacity: number; precision: EmbeddingBankState['precision']; cursor: number; ids: string; data: string };
  clusterings: Array<{ ids: string; assignments: string; centroids: string; dims: number; slot: Slot }>;
  rounds: PositivesState['rounds'];
  latest: number | null;
  pending?: PositivesState['pending'];
  firstServedBatch: number | null;
  counts: PositiveCounts;
  reads?: { ids: string; indices: string };
  /** Every distinct id, once; id lists are int32 arrays of positions in it. */
  strings: string[];
  sections: Record<string, Section>;
}

const dtypeOf = (a: Stored): Dtype => (a instanceof Float32Array ? 'float32' : a instanceof Int32Array ? 'int32' : 'uint16');

/** Writes `state` into the checkpoint folder `dir` (which exists). */
export function writePositives(dir: string, state: PositivesState): void {
  const strings: string[] = [];
  const position = new Map<string, number>();
  const idList = (ids: readonly string[]): Int32Array =>
    Int32Array.from(ids, (id) => {
      let at = position.get(id);
      if (at === undefined) {
        at = strings.length;
        strings.push(id);
        position.set(id, at);
      }
      return at;
    });
  const arrays: Array<[string, Stored]> = [];
  const add = (name: string, a: Stored): string => {
    arrays.push([name, a]);
    return name;
  };
  const { bank } = state;
  const json: PositivesJson = {
    format: 'densestream-positives',
    version: 1,
    step: state.step,
    every: state.every,
    lag: state.lag,
    clusters: state.clusters,
    bank: {
      dims: bank.dims,
      capacity: bank.capacity,
      precision: bank.precision,
      cursor: bank.cursor,
      ids: add('bank/ids', idList(bank.ids)),
      data: add('bank/data', bank.data),
    },
    clusterings: state.clusterings.map((c, i) => ({
      ids: add(`clustering${i}/ids`, idList(c.ids)),
      assignments: add(`clustering${i}/assignments`, c.assignments),
      centroids: add(`clustering${i}/centroids`, c.centroids),
      dims: c.dims,
      slot: c.slot,
    })),
    rounds: state.rounds,
    latest: state.latest,
    ...(state.pending ? { pending: state.pending } : {}),
    firstServedBatch: state.firstServedBatch,
    counts: state.counts,
    ...(state.reads
      ? { reads: { ids: add('reads/ids', idList(state.reads.ids)), indices: add('reads/indices', state.reads.indices) } }
      : {}),
    strings,
    sections: {},
  };
  let size = 0;
  for (const [name, a] of arrays) {
    json.sections[name] = { dtype: dtypeOf(a), offset: size, length: a.length };
    size += Math.ceil(a.byteLength / 8) * 8;
  }
  const bin = new Uint8Array(size);
  for (const [name, a] of arrays) bin.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), (json.sections[name] as Section).offset);
  writeFileAtomic(join(dir, POSITIVES_BIN), bin);
  writeFileAtomic(join(dir, POSITIVES_JSON), JSON.stringify(json));
}

/** Whether the checkpoint folder `dir` holds softrank's positives. */
export function hasPositives(dir: string): boolean {
  return existsSync(join(dir, POSITIVES_JSON));
}

/** Reads what {@link writePositives} wrote into `dir`; throws, naming the file, when it is not such a pair of files. */
export function readPositives(dir: string): PositivesState {
  const jsonPath = join(dir, POSITIVES_JSON);
  const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as PositivesJson;
  if (json.format !== 'densestream-positives' || json.version !== 1)
    throw new Error(`${jsonPath}: not a densestream positives file (version 1)`);
  const bin = readFileSync(join(dir, POSITIVES_BIN));
  const array = (name: string): Stored => {
    const section = json.sections[name];
    if (!section) throw new Error(`${jsonPath}: no array ${name}`);
    const width = section.dtype === 'uint16' ? 2 : 4;
    const end = section.offset + section.length * width;
    if (end > bin.byteLength)
      throw new Error(`${join(dir, POSITIVES_BIN)}: ${name} runs past the end of the file (${end} > ${bin.byteLength} bytes)`);
    // A copy into a buffer of its own: aligned, and nothing keeps the whole file alive.
    const bytes = bin.buffer.slice(bin.byteOffset + section.offset, bin.byteOffset + end);
    return section.dtype === 'float32'
      ? new Float32Array(bytes)
      : section.dtype === 'int32'
        ? new Int32Array(bytes)
        : new Uint16Array(bytes);
  };
  const typed = <T extends Stored>(name: string, kind: new (n: number) => T): T => {
    const a = array(name);
    if (!(a instanceof kind)) throw new Error(`${jsonPath}: ${name} is ${a.constructor.name}, expected ${kind.name}`);
    return a;
  };
  const ids = (name: string): string[] =>
    Array.from(typed(name, Int32Array), (i) => {
      const id = json.strings[i];
      if (id === undefined) throw new Error(`${jsonPath}: ${name} refers to id ${i} of ${json.strings.length}`);
      return id;
    });
  const b = json.bank;
  return {
    step: json.step,
    every: json.every,
    lag: json.lag,
    clusters: json.clusters,
    bank: {
      dims: b.dims,
      capacity: b.capacity,
      precision: b.precision,
      cursor: b.cursor,
      ids: ids(b.ids),
      data: b.precision === 'float16' ? typed(b.data, Uint16Array) : typed(b.data, Float32Array),
    },
    clusterings: json.clusterings.map((c) => ({
      ids: ids(c.ids),
      assignments: typed(c.assignments, Int32Array),
      centroids: typed(c.centroids, Float32Array),
      dims: c.dims,
      slot: c.slot,
    })),
    rounds: json.rounds,
    latest: json.latest,
    ...(json.pending ? { pending: json.pending } : {}),
    firstServedBatch: json.firstServedBatch,
    counts: json.counts,
    ...(json.reads ? { reads: { ids: ids(json.reads.ids), indices: typed(json.reads.indices, Int32Array) } } : {}),
  };
}
