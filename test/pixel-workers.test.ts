import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from, lastValueFrom, toArray } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { renderScene } from '../datasets/scenes.js';
import { attentionMap } from '../operators/attention-map.js';
import { foregroundMask } from '../operators/foreground-mask.js';
import { PixelWorkers, saliencyMasks } from '../operators/pixel-workers.js';
import type { SaliencyOptions } from '../operators/saliency.js';
import { readSamples } from '../datasets/source.js';
import { scenesSource } from '../datasets/scenes.js';
import { sampleViews, type SampleViewOptions } from '../pipelines/sample-views.js';
import type { Sample, SkipRecord } from '../core/index.js';

const flat = (s: Sample) => ({
  id: s.id,
  attention: Array.from(s.attention?.data ?? []),
  mask: Array.from(s.mask?.data ?? []),
  size: [s.attention?.width, s.attention?.height, s.mask?.width, s.mask?.height],
});

/** A sample whose image is one colour: its saliency map is unusable and its mask falls back to the whole image. */
const flatGrey = (id: string): Sample => ({
  id,
  pixels: { data: new Uint8Array(32 * 24 * 3).fill(128), width: 32, height: 24, channels: 3 },
});

describe('PixelWorkers', () => {
  const pool = new PixelWorkers(2);
  afterAll(() => pool.close());

  it('gives the main thread’s saliency maps and masks, value for value, in input order, with the same fallback notes', async () => {
    const samples = [...Array.from({ length: 40 }, (_, i) => renderScene(3, i, i % 2 ? 64 : 48)), flatGrey('grey')];
    const here: string[] = [];
    const there: string[] = [];
    const expected = await lastValueFrom(
      from(samples).pipe(attentionMap(), foregroundMask({ onFallback: (id) => here.push(id) }), toArray()),
    );
    const got = await lastValueFrom(from(samples).pipe(saliencyMasks(pool, { onFallback: (id) => there.push(id) }), toArray()));
    expect(got.map(flat)).toEqual(expected.map(flat));
    expect(there).toEqual(['grey']);
    expect(there).toEqual(here);
    // Without masks: the maps only.
    const maps = await lastValueFrom(from(samples.slice(0, 4)).pipe(saliencyMasks(pool), toArray()));
    expect(maps.every((s) => s.mask === undefined)).toBe(true);
    expect(maps.map((s) => Array.from(s.attention!.data))).toEqual(expected.slice(0, 4).map((s) => Array.from(s.attention!.data)));
  });

  it('cuts the same views from a source with workers as without (hapicl: mask-aware crops, the attention view)', async () => {
    const o: SampleViewOptions = { size: 32, preset: 'mocov2', attentionView: true, masks: 'saliency', minForeground: 0.2, seed: 5 };
    const notes: Record<string, SkipRecord[]> = { here: [], there: [] };
    const run = (options: SampleViewOptions, key: string) =>
      lastValueFrom(
        from(readSamples(scenesSource({ count: 24, seed: 1 }), { seed: 2, epoch: 0 })).pipe(
          sampleViews(
            options,
            [0],
            () => undefined,
            (r) => notes[key]!.push(r),
          ),
          toArray(),
        ),
      );
    const views = (s: Sample[]) =>
      s.map((x) => ({ ...flat(x), views: x.views?.map((v) => [v.box, v.flipped, Array.from(v.mask?.data ?? [])]) }));
    const expected = await run(o, 'here');
    const got = await run({ ...o, workers: pool }, 'there');
    expect(views(got)).toEqual(views(expected));
    expect(notes['there']).toEqual(notes['here']);
  });

  it('notes unusable maps in input order, whatever order two workers finish in', async () => {
    const two = new PixelWorkers(2);
    try {
      // Big scenes between the flat ones, so that the flat ones (quick) finish first.
      const samples = Array.from({ length: 12 }, (_, i) => (i % 3 === 2 ? flatGrey(`grey${i}`) : renderScene(1, i, 160)));
      const notes: string[] = [];
      const out = await lastValueFrom(from(samples).pipe(saliencyMasks(two, { onFallback: (id) => notes.push(id) }), toArray()));
      expect(notes).toEqual(['grey2', 'grey5', 'grey8', 'grey11']);
      expect(out.map((s) => s.id)).toEqual(samples.map((s) => s.id));
    } finally {
      await two.close();
    }
  });

  it('answers jobs posted together one by one: a job that fails fails alone, with its reason', async () => {
    const pixels = renderScene(0, 0).pixels!;
    const expected = (await lastValueFrom(from([renderScene(0, 0)]).pipe(attentionMap(), toArray())))[0]!.attention!;
    // Posted in one turn of the event loop, so the three travel to the worker as one message.
    const [good, bad, again] = await Promise.allSettled([
      pool.saliency(pixels),
      pool.saliency(pixels, { method: 'nope' as SaliencyOptions['method'] }),
      pool.saliency(pixels),
    ]);
    expect(bad).toMatchObject({ status: 'rejected', reason: { message: expect.stringContaining('--attention: expected one of') } });
    for (const r of [good, again]) {
      expect(r.status).toBe('fulfilled');
      if (r.status === 'fulfilled') expect(Array.from(r.value.attention.data)).toEqual(Array.from(expected.data));
    }
  });

  it('refuses an undecoded sample by name, and fails jobs once closed', async () => {
    await expect(lastValueFrom(from([{ id: 'raw' } as Sample]).pipe(saliencyMasks(pool)))).rejects.toThrow(
      'saliencyMasks: sample raw is not decoded',
    );
    const other = new PixelWorkers(1);
    const failed = expect(other.saliency(renderScene(0, 0).pixels!)).rejects.toThrow('the pool closed with jobs in hand');
    await other.close();
    await failed;
    await expect(other.saliency(renderScene(0, 1).pixels!)).rejects.toThrow('the pool is closed');
    expect(() => new PixelWorkers(0)).toThrow('expected a positive number of workers, got 0');
  });

  it('keeps a process alive while it has jobs, and lets it exit when idle without close()', () => {
    const script = `
      import { PixelWorkers } from ${JSON.stringify(new URL('../dist/operators/pixel-workers.js', import.meta.url).href)};
      import { renderScene } from ${JSON.stringify(new URL('../dist/datasets/scenes.js', import.meta.url).href)};
      const pool = new PixelWorkers(1);
      const r = await pool.saliency(renderScene(0, 0).pixels, {}, 0.01);
      console.log(r.attention.width, r.mask.data.length);`;
    const file = join(mkdtempSync(join(tmpdir(), 'densestream-pixel-workers-')), 'idle.mjs');
    writeFileSync(file, script);
    const run = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe('64 4096');
  });
});
