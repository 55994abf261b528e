import { from, lastValueFrom, mergeMap, Observable, type Subscription } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { scenesSource } from '../datasets/scenes.js';
import { readSamples } from '../datasets/source.js';
import { decode } from '../operators/decode.js';
import { fromSource } from '../operators/from-source.js';
import { orderedMergeMap } from '../operators/ordered-merge-map.js';
import { SampleBudget } from '../operators/sample-budget.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A consumer that takes `msPerItem` for each item (an async trainer step). It queues what
 * arrives and reports the longest queue it ever had; `onDone` runs after each item.
 */
function slowConsumer<T>(source: Observable<T>, msPerItem: number, onDone: () => void) {
  const queue: T[] = [];
  let longest = 0;
  let consumed = 0;
  let finished = false;
  let subscription: Subscription | undefined;
  const done = new Promise<void>((resolve, reject) => {
    subscription = source.subscribe({
      next: (item) => {
        queue.push(item);
        longest = Math.max(longest, queue.length);
      },
      error: reject,
      complete: () => {
        finished = true;
      },
    });
    (async () => {
      while (!finished || queue.length > 0) {
        if (queue.length === 0) {
          await sleep(0);
          continue;
        }
        queue.shift();
        await sleep(msPerItem);
        consumed++;
        onDone();
      }
      resolve();
    })().catch(reject);
  });
  const stop = () => {
    subscription?.unsubscribe();
    queue.length = 0;
    finished = true;
  };
  return { done, stats: () => ({ longest, consumed }), stop };
}

describe('backpressure', () => {
  it('a plain mergeMap in front of a slow consumer buffers nearly everything (the failure we prevent)', async () => {
    const items = Array.from({ length: 2000 }, (_, i) => i);
    const consumer = slowConsumer(from(items).pipe(mergeMap(async (i) => i, 2)), 0.2, () => {});
    await sleep(50);
    expect(consumer.stats().longest).toBeGreaterThan(1900);
    consumer.stop();
  });

  it('keeps at most the budget alive between source and a 10× slower consumer over 2 000 samples, at flat heap', async () => {
    const source = scenesSource({ size: 32, count: 2000, seed: 3 });
    // Producer: render + decode ≈ 0.1 ms a sample here; the consumer takes ≥ 1 ms (≥ 10×).
    const capacity = 32;
    const budget = new SampleBudget(capacity);
    let read = 0;
    let alive = 0;
    let peakAlive = 0;
    async function* counted() {
      for await (const s of readSamples(source, { seed: 1 })) {
        read++;
        alive++;
        peakAlive = Math.max(peakAlive, alive);
        yield s;
      }
    }
    const pipeline = fromSource(counted(), budget).pipe(decode({ concurrency: 4 }));
    globalThis.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    let heapPeak = heapBefore;
    const consumer = slowConsumer(pipeline, 1, () => {
      alive--;
      budget.release();
      if (read % 100 === 0) heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    });
    await consumer.done;
    globalThis.gc?.();
    const heapAfter = process.memoryUsage().heapUsed;

    expect(consumer.stats().consumed).toBe(2000);
    expect(read).toBe(2000);
    expect(peakAlive).toBeLessThanOrEqual(capacity);
    expect(budget.peak).toBeLessThanOrEqual(capacity);
    expect(consumer.stats().longest).toBeLessThanOrEqual(capacity);
    // 2 000 samples of 32×32 with ground truth are ≈ 15 MB; holding all would show.
    expect(heapAfter - heapBefore).toBeLessThan(4 * 1024 * 1024);
    expect(heapPeak - heapBefore).toBeLessThan(12 * 1024 * 1024);
  });

  it('stops reading when unsubscribed, and closes the source', async () => {
    let read = 0;
    let closed = false;
    function* endless() {
      try {
        for (;;) {
          read++;
          yield read;
        }
      } finally {
        closed = true;
      }
    }
    const budget = new SampleBudget(4);
    const values: number[] = [];
    const sub = fromSource(endless(), budget).subscribe((v) => {
      values.push(v);
      budget.release();
    });
    await sleep(20);
    sub.unsubscribe();
    const after = read;
    await sleep(20);
    expect(read).toBe(after);
    expect(closed).toBe(true);
  });
});

describe('orderedMergeMap', () => {
  it('emits in input order whatever the completion order, with at most `concurrency` calls running', async () => {
    let running = 0;
    let most = 0;
    const out = await lastValueFrom(
      from([30, 5, 20, 1, 10, 2]).pipe(
        orderedMergeMap(async (ms) => {
          running++;
          most = Math.max(most, running);
          await sleep(ms);
          running--;
          return ms;
        }, 3),
        (s) =>
          new Observable<number[]>((sub) => {
            const all: number[] = [];
            return s.subscribe({
              next: (v) => all.push(v),
              complete: () => {
                sub.next(all);
                sub.complete();
              },
            });
          }),
      ),
    );
    expect(out).toEqual([30, 5, 20, 1, 10, 2]);
    expect(most).toBe(3);
  });

  it('drops items whose call resolves to undefined and errors when a call rejects', async () => {
    const kept = await lastValueFrom(
      from([1, 2, 3, 4]).pipe(
        orderedMergeMap(async (n) => (n % 2 ? n : undefined), 2),
        (s) =>
          new Observable<number[]>((sub) => {
            const all: number[] = [];
            return s.subscribe({
              next: (v) => all.push(v),
              complete: () => {
                sub.next(all);
                sub.complete();
              },
            });
          }),
      ),
    );
    expect(kept).toEqual([1, 3]);
    await expect(
      lastValueFrom(
        from([1]).pipe(
          orderedMergeMap(async () => {
            throw new Error('boom');
          }),
        ),
      ),
    ).rejects.toThrow('boom');
  });
});
