/** Learning-rate schedule: linear warm-up to `base`, then cosine decay to 0 at `total` steps. */
export function cosineWithWarmup(step: number, total: number, base: number, warmup: number): number {
  if (step < warmup) return (base * (step + 1)) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return 0.5 * base * (1 + Math.cos(Math.PI * progress));
}
