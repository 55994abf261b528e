/**
 * Where a view's pixels are cut, as an option: per image on the CPU (sharp), per batch on the
 * compute backend, or `auto`, the one measured cheaper (`augment-choice.ts`). Free of tfjs and
 * sharp, so option parsing can name the choices without loading either.
 */
export const AUGMENT_PATHS = ['cpu', 'backend'] as const;
export type AugmentPath = (typeof AUGMENT_PATHS)[number];

export const AUGMENT_CHOICES = [...AUGMENT_PATHS, 'auto'] as const;
export type AugmentChoice = (typeof AUGMENT_CHOICES)[number];
