/** Checks of command-line values: a wrong value stops the job before any work, naming the flag. */
import { parseArgs } from 'node:util';
import { ConfigError, toConfigError } from '../core/config-error.js';

export { ConfigError, toConfigError } from '../core/config-error.js';

/** Parses a flag's value as a positive integer. */
export function positiveInt(value: string | undefined, field: string): number {
  const n = Number(value);
  if (value === undefined || value.trim() === '' || !Number.isInteger(n) || n < 1) {
    throw new Error(`${field}: expected a positive integer, got "${value}"`);
  }
  return n;
}

/** One option of a job: its type and the values it accepts. */
export type Spec = { type: 'string'; choices?: readonly string[] } | { type: 'int'; min: number } | { type: 'number'; min: number } | { type: 'boolean' };

/** `parseArgs`'s option table for a spec table: flags arrive as text (booleans as switches). */
export function flagTypes(spec: Record<string, Spec>): Record<string, { type: 'string' | 'boolean' }> {
  return Object.fromEntries(Object.entries(spec).map(([k, s]) => [k, { type: s.type === 'boolean' ? 'boolean' as const : 'string' as const }]));
}

/** Checks one option's value against its spec, naming the option when it is wrong. */
export function coerce(table: Record<string, Spec>, key: string, raw: unknown, where: string, fromFlag: boolean): string | number | boolean {
  const spec = table[key];
  if (!spec) throw new ConfigError(`${where}: unknown option "${key}" (options: ${Object.keys(table).join(', ')})`);
  const field = where === '--' ? `--${key}` : `${where} ${key}`; // a flag reads --steps, a config key FILE steps
  if (spec.type === 'boolean') {
    if (typeof raw !== 'boolean') throw new ConfigError(`${field}: expected true or false, got ${JSON.stringify(raw)}`);
    return raw;
  }
  if (spec.type === 'string') {
    if (typeof raw !== 'string') throw new ConfigError(`${field}: expected a string, got ${JSON.stringify(raw)}`);
    if (spec.choices && !spec.choices.includes(raw)) throw new ConfigError(`${field}: expected one of ${spec.choices.join('|')}, got "${raw}"`);
    return raw;
  }
  // Flags arrive as text; a JSON config must hold real numbers.
  const n = fromFlag && typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n)) || n < spec.min) {
    throw new ConfigError(`${field}: expected ${spec.type === 'int' ? 'an integer' : 'a number'} ≥ ${spec.min}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** Parses `argv` against a spec table: every flag checked, unknown or missing `required` ones refused; unset flags absent. */
export function parseFlags(argv: string[], table: Record<string, Spec>, required: readonly string[] = []): Record<string, string | number | boolean> {
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: argv, options: flagTypes(table), strict: true, allowPositionals: false }).values;
  } catch (err) {
    toConfigError(err);
  }
  for (const name of required) if (flags[name] === undefined) throw new ConfigError(`--${name} is required (see densestream --help)`);
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) out[k] = coerce(table, k, v, '--', true);
  return out;
}
