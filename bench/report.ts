/** Small helpers every benchmark shares: JSON lines out, checked numbers in. */

/** Prints one JSON line (numbers rounded to 0.01) on stdout. */
export function printJson(record: Record<string, unknown>): void {
  const rounded = JSON.stringify(record, (_, v: unknown) =>
    typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 100) / 100 : v,
  );
  process.stdout.write(`${rounded}\n`);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
