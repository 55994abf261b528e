/**
 * `--hue H`: the colour jitter's hue range, the augmentation strength that #16's recipe search
 * turned on (docs/experiments.md, "Looking for a recipe that learns within ten minutes").
 */
import { describe, expect, it } from 'vitest';
import { keyedRng } from '../core/random.js';
import { renderScene } from '../datasets/scenes.js';
import { presetViews, withHue } from '../operators/augment-presets.js';
import { planView } from '../operators/view-plan.js';
import { viewConfigs } from '../pipelines/sample-views.js';
import { parsePrecomputeConfig } from '../pipelines/precompute-options.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { DEFAULT_RECIPE } from '../pipelines/recipe.js';

/** The hue shifts the views of `configs` draw for 400 plans. */
function hueShifts(hue: number | undefined): number[] {
  const sample = renderScene(0, 0, 32);
  const [config] = viewConfigs({
    size: 32,
    preset: 'mocov2',
    attentionView: false,
    masks: 'none',
    seed: 0,
    ...(hue === undefined ? {} : { hue }),
  });
  return Array.from({ length: 400 }, (_, i) => planView(keyedRng(1, 'view', i), config!, sample).jitter?.hue).filter(
    (h): h is number => h !== undefined,
  );
}

describe('--hue', () => {
  it("draws hue shifts over ±H turns, and over the preset's ±0.1 when not given", () => {
    const preset = hueShifts(undefined);
    expect(Math.max(...preset.map(Math.abs))).toBeLessThanOrEqual(0.1);
    const full = hueShifts(0.5);
    expect(Math.max(...full.map(Math.abs))).toBeLessThanOrEqual(0.5);
    expect(full.filter((h) => Math.abs(h) > 0.25).length / full.length).toBeGreaterThan(0.4); // uniform on ±0.5: half beyond 0.25
    expect(hueShifts(0).every((h) => h === 0)).toBe(true);
  });

  it('changes only the jitter of views that have one, and refuses a range beyond half a turn', () => {
    const views = presetViews('byol', 32);
    const changed = withHue(views, 0.3);
    changed.forEach((v, i) => expect(v).toEqual({ ...views[i], jitter: { ...views[i]!.jitter!, hue: 0.3 } }));
    expect(withHue(views, undefined)).toBe(views);
    expect(() => withHue(views, 0.6)).toThrow('hue: expected a range in turns in [0, 0.5], got 0.6');
  });

  it('is a flag of train and precompute, checked before any work starts', () => {
    expect(parseTrainConfig(['--hue', '0.5', '--out', '/tmp/never']).hue).toBe(0.5);
    expect(parseTrainConfig(['--out', '/tmp/never']).hue).toBe(DEFAULT_RECIPE.hue); // the default recipe's: any hue
    expect(parsePrecomputeConfig(['--data', 'scenes', '--out', '/tmp/never']).hue).toBe(DEFAULT_RECIPE.hue);
    expect(() => parseTrainConfig(['--hue', '0.7'])).toThrow(/--hue/);
    expect(parsePrecomputeConfig(['--data', 'scenes', '--hue', '0.25', '--out', '/tmp/never']).hue).toBe(0.25);
  });
});
