/** An independent implementation for the tests: METHODS.md §4's ranking distillation. */

/** rankDistillation as plain loops over pairs, in float64. */
export function rankReference(s: number[][], t: number[][], tauS: number, tauT: number, tauW: number): number {
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  let total = 0;
  for (let a = 0; a < s.length; a++) {
    const sa = s[a]!;
    const ta = t[a]!;
    const exps = ta.map((v) => Math.exp(v / tauW));
    const sum = exps.reduce((x, y) => x + y, 0);
    let num = 0;
    let den = 0;
    for (let i = 0; i < sa.length; i++)
      for (let j = 0; j < sa.length; j++) {
        if (i === j) continue;
        const w = exps[i]! / sum;
        const pt = sig((ta[i]! - ta[j]!) / tauT);
        const ps = sig((sa[i]! - sa[j]!) / tauS);
        num += w * -(pt * Math.log(ps) + (1 - pt) * Math.log(1 - ps));
        den += w;
      }
    total += num / den;
  }
  return total / s.length;
}
