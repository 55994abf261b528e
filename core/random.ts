/**
 * Keyed, seeded randomness (DESIGN.md, "Determinism"): every random choice draws from a
 * generator keyed by `(seed, epoch, sample id, view index, …)`, so the same configuration
 * gives the same views in any process, in any order of work, and after a resume.
 *
 * The generator is sfc32 (Small Fast Counting, 128-bit state; passes PractRand to 2^40+),
 * seeded from a 128-bit hash of the key. No library offers keyed generation, and these
 * ~40 lines are all of it.
 */

/** A stream of random numbers. */
export interface Rng {
  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** true with probability p. */
  chance(p: number): boolean;
  /** Standard normal (Box–Muller). */
  normal(): number;
}

/** 128-bit hash of a key (cyrb128: four multiply–xorshift lanes). */
function hashKey(key: string): [number, number, number, number] {
  let h1 = 1779033703,
    h2 = 3144134277,
    h3 = 1013904242,
    h4 = 2773480762;
  for (let i = 0; i < key.length; i++) {
    const k = key.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/**
 * A generator for one key. Parts are joined unambiguously, so `(1, 'a', 2)` and
 * `(1, 'a2')` differ.
 *
 * @example
 * const r = keyedRng(seed, 'view', epoch, sample.id, viewIndex);
 * const scale = r.uniform(0.2, 1);
 */
export function keyedRng(...key: ReadonlyArray<string | number>): Rng {
  // The state in an Int32Array: as four captured variables, the lanes (past 2^30, so not small
  // integers) boxed a new number on every store, and a draw took 9–12 ns; as int32 lanes it
  // takes about 3. A 64-px scene draws 4 096 for its grain. The functions close over the state,
  // not `this`, so `rng.next` can be passed on alone.
  const s = Int32Array.from(hashKey(key.map((k) => `${typeof k === 'number' ? 'n' : 's'}${k}`).join('\u0000')));
  const next = (): number => {
    const a = s[0] as number;
    const b = s[1] as number;
    const c = s[2] as number;
    const d = s[3] as number;
    const t = (((a + b) | 0) + d) | 0;
    s[0] = b ^ (b >>> 9);
    s[1] = (c + (c << 3)) | 0;
    s[2] = (((c << 21) | (c >>> 11)) + t) | 0;
    s[3] = (d + 1) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next(); // mix the seed into all four lanes
  return {
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    int: (n) => Math.floor(next() * n),
    chance: (p) => next() < p,
    normal: () => {
      const u = 1 - next(); // (0, 1]: log stays finite
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
  };
}

/** Fisher–Yates shuffle of `items` in place, driven by `rng`. */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}
