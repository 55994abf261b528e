/**
 * softrank's image-level candidate lists (`SoftRankOptions.relation`, `train --relation`), in a
 * file of their own so that option parsing names them without loading tfjs.
 * - `cross` (the default): the online query of view 1 ranks the candidates' target projections of
 *   view 2, `s_ac = cos(p(y_a), z_c)`, its own `z_a` included (`t_aa = 1`): ReSSL's relation;
 * - `within`: their online projections of view 1, `s_ac = cos(p(y_a), y_c)`, itself left out
 *   (METHODS.md §4's formulas). No term then compares an image's two views, and the target
 *   collapses (docs/experiments.md, "Measured: why softrank does not learn").
 */
export const SOFTRANK_RELATIONS = ['cross', 'within'] as const;
export type SoftRankRelation = (typeof SOFTRANK_RELATIONS)[number];
