import { bufferCount, concatMap, from, type OperatorFunction } from 'rxjs';
import type { PlannedView, Sample, View } from '../core/index.js';
import { augmentBatch } from './augment-views.js';

export interface CutPlannedViewsOptions {
  /** Samples cut together on the backend (default 32); the sample budget must allow that many in flight. */
  batch?: number;
}

/** Cuts the samples' planned views on the backend (`augmentBatch`, size by size) and reads the bytes back. */
async function cutSamples(samples: Sample[]): Promise<Sample[]> {
  const cut: Array<Uint8Array[]> = samples.map(() => []);
  const views = augmentBatch(samples);
  try {
    for (const view of views) {
      const values = (await view.data()) as Float32Array;
      const plane = values.length / samples.length;
      samples.forEach((_, b) => cut[b]!.push(Uint8Array.from(values.subarray(b * plane, (b + 1) * plane))));
    }
  } finally {
    views.forEach((v) => v.dispose());
  }
  return samples.map((s, b) => ({
    ...s,
    views: (s.views as PlannedView[]).map(({ plan: _plan, meanGrey: _grey, size, ...rest }, k): View => ({
      ...rest,
      pixels: { data: cut[b]![k]!, width: size, height: size, channels: 3 },
    })),
  }));
}

/**
 * Cuts the pixels of planned views (`multiView({ augment: 'backend' })`) on the compute
 * backend, `batch` samples at a time, and hands them on as ordinary CPU views — for jobs that
 * need the bytes (`precompute` encodes them as images). Samples pass in order; those without
 * planned views pass unchanged. A group of images of different sizes is cut size by size.
 *
 * ```
 * input:   a(plans) b(plans) c(plans)|
 * output:  ----------------A B C|        (batch 3: A has views with pixels)
 * ```
 *
 * @example
 * source$.pipe(decode(), multiView({ views, seed, augment: 'backend' }), cutPlannedViews({ batch: 32 }))
 * @see multiView
 * @see batch, which cuts planned views straight into tensors
 */
export function cutPlannedViews(options: CutPlannedViewsOptions = {}): OperatorFunction<Sample, Sample> {
  const size = options.batch ?? 32;
  if (!Number.isInteger(size) || size < 1) throw new Error(`cutPlannedViews batch: expected a positive integer, got ${size}`);
  return (source) =>
    source.pipe(
      bufferCount(size),
      concatMap(async (group) => {
        const out = [...group];
        const planned = [...group.keys()].filter((i) => group[i]!.views?.length && group[i]!.views!.every((v) => v.plan !== undefined));
        if (planned.length === 0) return out;
        const done = await cutSamples(planned.map((i) => group[i] as Sample));
        planned.forEach((i, j) => {
          out[i] = done[j] as Sample;
        });
        return out;
      }),
      concatMap((samples) => from(samples)),
    );
}
