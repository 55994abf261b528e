/**
 * The contract between operators/augment-views.ts, which cuts a batch's views, and a backend
 * kernel that does the whole cut in one pass (models/kernels/ registers one for wasm). Where no
 * backend registers it, the operator runs its op graph instead; both give the same pixels.
 *
 * Inputs: `sources` `[B, H, W, 3]` float32 (0–255), or, with `layout` `[B, 3]` int32, the
 * images' bytes one after another as int32 words (each image padded to whole words; images of
 * any sizes; `layout` row b: image b's first word, height, width);
 * `params` `[6 + B·CUT_VIEW_PARAMS]`: scale[3] and shift[3] applied last per channel (1 and 0
 * for bytes), then per view the colour matrix m[3][3] row-major (out_r = Σ_c m[r][c]·in_c), its
 * offset and solarize (0 or 1); and
 * `weights` `[B · 2 · size · (band + 2)]`: per view, `size` row entries then `size` column
 * entries, each the first source pixel `lo`, the count `n ≤ band` of weights
 * that follow it, and `band` slots holding them (resample-weights.ts' bands, blur folded in;
 * `lo + n` within the view's image). The crop is rows · image · columnsᵀ.
 * Attributes: `size` (views are `size × size`) and `band`. Output: `[B, size, size, 3]` float32.
 */
export const CUT_VIEWS_KERNEL = 'DensestreamCutViews';

/** Floats of `params` per view, after the 6 of the normalisation: colour matrix, offset, solarize. */
export const CUT_VIEW_PARAMS = 11;
