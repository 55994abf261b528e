/**
 * What the two ways of pairing anchors with positives share (`pair-by-id.ts`, reading a
 * positive again from the source; `pair-from-reservoir.ts`, taking it from recent samples of a
 * stream): an anchor's place in the stream (its batch and the clustering that serves it), the
 * grouping of one batch's anchors, and the anchor as its own positive.
 */
import { Observable, type OperatorFunction } from 'rxjs';
import type { Sample } from '../core/index.js';
import type { ClusterIndex } from './cluster-index.js';

/** The next anchor's batch (0-based) and clustering, asked once per anchor in stream order (`Reclustering.nextAnchor`). */
export type NextAnchor = () => { batch: number; clustering: Promise<ClusterIndex | undefined> };

/** An anchor, with the batch it will be trained in and the clustering that pairs it. */
export interface PendingAnchor {
  anchor: Sample;
  batch: number;
  clustering: Promise<ClusterIndex | undefined>;
}

/** The anchor as its own positive: its two views make the pair. */
export function selfPair(anchor: Sample): [Sample, Sample] {
  const { positive: _, ...copy } = anchor;
  return [{ ...anchor, positive: anchor.id }, copy];
}

/**
 * Consecutive items with the same key, in groups of at most `size`: a group ends when the key
 * changes, when it is full, or when the source completes. Holds at most `size` items.
 */
export function groupConsecutive<T>(keyOf: (item: T) => number, size: number): OperatorFunction<T, T[]> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`groupConsecutive size: expected a positive integer, got ${size}`);
  return (source) =>
    new Observable<T[]>((subscriber) => {
      let group: T[] = [];
      let key: number | undefined;
      const flush = (): void => {
        if (group.length === 0) return;
        const full = group;
        group = [];
        subscriber.next(full);
      };
      const subscription = source.subscribe({
        next(item) {
          const k = keyOf(item);
          if (k !== key) flush();
          key = k;
          group.push(item);
          if (group.length === size) flush();
        },
        error: (err: unknown) => subscriber.error(err),
        complete() {
          flush();
          subscriber.complete();
        },
      });
      return () => subscription.unsubscribe();
    });
}
