/**
 * Seeds for tfjs's random initialisers. tfjs seeds its generator with `seed ? seed : Math.random()`,
 * so a seed of 0 silently means "unseeded": every seed here is derived from the run's seed and
 * the variable's name by FNV-1a, and is never 0.
 */
export function tfSeed(seed: number, name: string): number {
  let h = 2166136261; // the FNV offset basis; the key carries the seed
  const key = `${seed}/${name}`;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return ((h >>> 0) % 2147483646) + 1;
}
