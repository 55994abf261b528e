/**
 * softrank's image-level candidate lists (`SoftRankOptions.relation`, `train --relation`), in a
 * file of their own so that option parsing names them without loading tfjs.
 * - `cross` (the default): the online query of view 1 against the candidates' target projections of view 2, its own included;
 * - `within`: against their online projections of view 1, itself left out (METHODS.md §4's formulas).
 */
export const SOFTRANK_RELATIONS = ['cross', 'within'] as const;
export type SoftRankRelation = (typeof SOFTRANK_RELATIONS)[number];
