/** Checks of values read from text outside a command's schema (`scenes:SIZE:COUNT`, the benches' flags). */

/** Parses a value as a positive integer, naming `field` when it is not one. */
export function positiveInt(value: string | undefined, field: string): number {
  const n = Number(value);
  if (value === undefined || value.trim() === '' || !Number.isInteger(n) || n < 1) {
    throw new Error(`${field}: expected a positive integer, got "${value}"`);
  }
  return n;
}
