/**
 * `densestream preview --data SOURCE --out DIR [--count N]`: contact sheets of what the data
 * plane makes of a source — attention, masks, and the training views with their boxes — to
 * look at before training on it.
 */
import { join } from 'node:path';
import { bufferCount, concatMap, lastValueFrom, take, tap } from 'rxjs';
import { readSamples } from '../datasets/source.js';
import { attentionMap } from '../operators/attention-map.js';
import { presetViews, withAttentionView } from '../operators/augment-presets.js';
import { decode } from '../operators/decode.js';
import { foregroundMask } from '../operators/foreground-mask.js';
import { fromSource } from '../operators/from-source.js';
import { multiView } from '../operators/multi-view.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { openSkipLog, skipSummary } from '../sinks/skip-log.js';
import { writePreviewSheet } from '../sinks/preview-sheet.js';
import { selectBackend } from '../models/backend.js';
import { openAttentionSource } from './attention-source.js';
import { openSource } from './data-source.js';
import type { PreviewConfig } from './preview-options.js';
import { prepareOutFolder } from './out-folder.js';
import { toConfigError } from '../core/config-error.js';

const ROWS_PER_SHEET = 6;

/** `densestream preview` with its options parsed (`parsePreviewConfig`). */
export async function previewCommand(values: PreviewConfig): Promise<void> {
  const { count, seed, size, masks } = values;
  const { out } = values;
  const views = withAttentionView(presetViews(values.preset, size));
  prepareOutFolder(out); // once every option is checked: a refused command creates nothing
  if (/^(model|encoder):/.test(values.attention)) await selectBackend('auto');
  const attention = await openAttentionSource(values.attention, '--attention', values['saliency-size']).catch(toConfigError);
  const source = await openSource(values.data).catch(toConfigError);

  const skipped = openSkipLog(join(out, 'skipped.jsonl'));
  const budget = new SampleBudget(2 * ROWS_PER_SHEET);
  const drop = (id: string, stage: string, reason: string) => skipped.record({ id, stage, reason });
  let sheets = 0;
  await lastValueFrom(
    fromSource(
      readSamples(source, { seed }, (r) => skipped.record(r)),
      budget,
    ).pipe(
      decode({
        minSide: Math.ceil(size / Math.sqrt(0.2)) * 2,
        onSkip: (r) => {
          skipped.record(r);
          budget.release();
        },
      }),
      take(count),
      attentionMap(attention),
      foregroundMask({ method: masks, seed, onFallback: (id, reason) => drop(id, 'mask', reason) }),
      multiView({ views, seed, onFallback: (id, reason, stage) => drop(id, stage, reason) }),
      bufferCount(ROWS_PER_SHEET),
      concatMap(async (rows) => {
        const path = join(out, `preview-${String(sheets++).padStart(3, '0')}.png`);
        await writePreviewSheet(rows, path);
        process.stdout.write(`${path}\n`);
        return rows.length;
      }),
      tap((n) => budget.release(n)),
    ),
    { defaultValue: 0 },
  );
  const n = await skipped.close();
  if (n + skipped.notes + skipped.retries > 0) process.stderr.write(`${skipSummary(source.name, n, skipped)}\n`);
}
