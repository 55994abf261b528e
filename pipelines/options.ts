/** Checks of command-line values: a wrong value stops the job before any work, naming the flag. */

/** Parses a flag's value as a positive integer. */
export function positiveInt(value: string | undefined, field: string): number {
  const n = Number(value);
  if (value === undefined || value.trim() === '' || !Number.isInteger(n) || n < 1) {
    throw new Error(`${field}: expected a positive integer, got "${value}"`);
  }
  return n;
}
