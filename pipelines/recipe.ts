/**
 * The default recipe: what `densestream train` runs with no options, sized so that learning
 * shows within ten minutes on 2 CPU cores (docs/experiments.md, "The default recipe"). `precompute` cuts the
 * views this recipe trains on, and `eval --checkpoint random` / `export` without a checkpoint
 * default to its image size, so the baseline is scored as the default run is.
 *
 * Each choice, with the measurement behind it (scenes, slim encoder, seed 0, scored by
 * `eval --protocol knn` against random-init at the same size; a gain's standard error ≈ 0.016):
 * - `hapicl`: at 32 px for 600 steps it gained +0.033 over random-init; mocov2 +0.014 and
 *   densecl +0.015, within noise. Rate, optimizer and HARL weights moved it by under 1 SE.
 * - 32 px, batch 64: a 64-px MoCo v2 run of 600 steps gained −0.002; at 32 px a step costs
 *   about a quarter, so the same minutes see 2–4× the images. Batch 32 for twice the steps
 *   gained +0.029 against batch 64's +0.033.
 * - queue 1 024: the 4 096 keys of 64-px runs outlast the few epochs a ten-minute run sees.
 * - hue 0.5: on the scenes an object's colours are random per image and shared by both views,
 *   so instance discrimination can tell images apart by colour alone. Any hue drawn took the
 *   600-step gain from +0.033 to +0.042; twice the jitter on every factor gave +0.022.
 * - 2 700 steps (172 800 images, the results tables' budget), since 2026-12-04: the engine now
 *   runs this in 7 min (415 images/s). 900 steps, sized when a step ran at 117 images/s,
 *   gained 3 SE only on average: +0.059 over seeds 0–4, 2.3–4.5 SE a seed. 2 700 steps gain
 *   +0.085, +0.109 and +0.103 on seeds 0–2 (5.1–6.6 SE; docs/RESULTS.md's hapicl rows).
 */
export const DEFAULT_RECIPE = {
  method: 'hapicl',
  size: 32,
  batch: 64,
  steps: 2700,
  queue: 1024,
  hue: 0.5,
} as const;
