/**
 * One declaration per command. A command's options are one zod object: each option's type,
 * range, choices, default and help text (`.meta({ description, arg })`). Its flags, the keys of
 * its `--config` JSON file, its `--help` page and its config type (`z.output`) all come from
 * that object, so an option is added, documented and checked in one place.
 *
 * Messages name the flag (`--steps: expected an integer ≥ 1, got "abc"`) or the file and key,
 * and a mistyped name gets the nearest one ("did you mean --steps?"). Every refusal is a
 * {@link ConfigError}: the CLI exits 2 before any work.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as z from 'zod';
import { ConfigError } from '../core/config-error.js';

/** What `--help` shows of an option, beside what the schema says of its type and default. */
export interface OptionMeta {
  /** What the option does, in a sentence or two. */
  description: string;
  /** The value's name in the help (`--steps N`); booleans have none. */
  arg?: string;
  /** What a wrong value is told it should be, where the type and range say it badly ("a fraction in [0, 1)"). */
  expected?: string;
  /** An action on this invocation (`--resume`, `--quiet`), not part of a job's configuration: no `--config` key. */
  flagOnly?: boolean;
  /** The default as the help states it, where it is computed ("runs/METHOD", "the checkpoint's"). */
  defaultText?: string;
}

export type OptionsShape = Record<string, z.ZodType>;

export interface CommandSchema<S extends OptionsShape = OptionsShape> {
  name: string;
  /** One line: what the command does (the top-level `--help` lists it). */
  summary: string;
  /** A positional argument (`report RUN`), required when declared. */
  positional?: { name: string; description: string };
  options: z.ZodObject<S>;
  /** Options without which the command refuses to start. */
  required?: ReadonlyArray<keyof S & string>;
  /** Accepts `--config FILE.json` holding the same keys (flags win). */
  configFile?: boolean;
  /** Paragraphs after the options in `--help`. */
  notes?: string;
}

export interface ParsedCommand<S extends OptionsShape> {
  values: z.output<z.ZodObject<S>>;
  /** The options the user set, by flag or config key (not defaults): cross-option checks need to know. */
  given: ReadonlySet<string>;
  positional?: string;
}

/** What the schema says of one option, read through zod's JSON Schema export. */
interface OptionFacts extends OptionMeta {
  type: 'boolean' | 'integer' | 'number' | 'string';
  choices?: readonly string[];
  minimum?: number;
  maximum?: number;
  exclusiveMaximum?: number;
  default?: unknown;
}

const factsCache = new WeakMap<object, Record<string, OptionFacts>>();

/** Each option's facts: type, range, choices and default from the schema, help from its meta. */
export function optionFacts<S extends OptionsShape>(command: CommandSchema<S>): Record<string, OptionFacts> {
  const cached = factsCache.get(command);
  if (cached) return cached;
  const json = z.toJSONSchema(command.options, { io: 'input', unrepresentable: 'any' }) as {
    properties?: Record<string, Record<string, unknown>>;
  };
  const facts: Record<string, OptionFacts> = {};
  for (const [name, p] of Object.entries(json.properties ?? {})) {
    const type = p['type'];
    if (type !== 'boolean' && type !== 'integer' && type !== 'number' && type !== 'string') {
      throw new Error(
        `${command.name} --${name}: an option must be a boolean, integer, number or string (the schema says ${JSON.stringify(type)})`,
      );
    }
    if (typeof p['description'] !== 'string')
      throw new Error(`${command.name} --${name}: every option needs its help text (.meta({ description }))`);
    const maximum = typeof p['maximum'] === 'number' && p['maximum'] < Number.MAX_SAFE_INTEGER ? p['maximum'] : undefined;
    facts[name] = {
      type,
      description: p['description'],
      ...(typeof p['arg'] === 'string' ? { arg: p['arg'] } : {}),
      ...(typeof p['expected'] === 'string' ? { expected: p['expected'] } : {}),
      ...(p['flagOnly'] === true ? { flagOnly: true } : {}),
      ...(typeof p['defaultText'] === 'string' ? { defaultText: p['defaultText'] } : {}),
      ...(Array.isArray(p['enum']) ? { choices: p['enum'] as string[] } : {}),
      ...(typeof p['minimum'] === 'number' ? { minimum: p['minimum'] } : {}),
      ...(maximum === undefined ? {} : { maximum }),
      ...(typeof p['exclusiveMaximum'] === 'number' ? { exclusiveMaximum: p['exclusiveMaximum'] } : {}),
      ...('default' in p ? { default: p['default'] } : {}),
    };
  }
  factsCache.set(command, facts);
  return facts;
}

/** What a wrong value should have been, in words: "an integer ≥ 1", "one of sgd|adamw|lars". */
function expectedText(f: OptionFacts): string {
  if (f.expected) return f.expected;
  if (f.choices) return `one of ${f.choices.join('|')}`;
  if (f.type === 'boolean') return 'true or false';
  if (f.type === 'string') return 'a string';
  let text = f.type === 'integer' ? 'an integer' : 'a number';
  if (f.minimum !== undefined) text += ` ≥ ${f.minimum}`;
  if (f.maximum !== undefined) text += `${f.minimum === undefined ? '' : ','} at most ${f.maximum}`;
  if (f.exclusiveMaximum !== undefined) text += `${f.minimum === undefined ? '' : ','} below ${f.exclusiveMaximum}`;
  return text;
}

/** Edits between two names, a swap of neighbours counting as one (optimal string alignment): typos are mostly those. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known name nearest `name`, when it is near enough to be a typo (at most a third of its letters off). */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

function unknownOption(command: { name: string }, name: string, where: string, known: readonly string[]): ConfigError {
  const near = nearestName(name, known);
  const hint = near === undefined ? '' : ` (did you mean ${where === '--' ? '--' : ''}${near}?)`;
  const field = where === '--' ? `unknown option --${name}` : `${where} unknown option "${name}"`;
  return new ConfigError(`${field}${hint}; see densestream ${command.name} --help`);
}

/**
 * Checks one option's value against its schema and returns it typed. Flags arrive as text, so a
 * number option's flag is read as a number; a JSON config must hold real numbers and booleans.
 */
export function checkOption<S extends OptionsShape>(
  command: CommandSchema<S>,
  name: string,
  raw: unknown,
  where = '--',
  fromFlag = where === '--',
): unknown {
  const facts = optionFacts(command);
  const f = facts[name];
  const shape = command.options.shape[name];
  if (!f || !shape) throw unknownOption(command, name, where, Object.keys(facts));
  const value =
    fromFlag && (f.type === 'integer' || f.type === 'number') && typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  const parsed = shape.safeParse(value);
  if (parsed.success && value !== undefined) return parsed.data;
  const field = where === '--' ? `--${name}` : `${where} ${name}`;
  throw new ConfigError(`${field}: expected ${expectedText(f)}, got ${JSON.stringify(raw)}`);
}

/** Reads `--config FILE` as a JSON object, or refuses it naming the file. */
function readConfigFile(file: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`--config ${file}: cannot read it as JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`--config ${file}: expected a JSON object`);
  return json as Record<string, unknown>;
}

/**
 * Parses a command's arguments: flags over the `--config` file over the defaults, every value
 * checked, unknown names refused with the nearest known one, required options present.
 */
export function parseCommand<S extends OptionsShape>(command: CommandSchema<S>, argv: readonly string[]): ParsedCommand<S> {
  const facts = optionFacts(command);
  const flagTable: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [name, f] of Object.entries(facts)) flagTable[name] = { type: f.type === 'boolean' ? 'boolean' : 'string' };
  if (command.configFile) flagTable['config'] = { type: 'string' };
  let flags: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values: flags, positionals } = parseArgs({
      args: [...argv],
      options: flagTable,
      strict: true,
      allowPositionals: command.positional !== undefined,
    }));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const unknown = /^Unknown option '--?([^']+)'/.exec(message);
    if (unknown) throw unknownOption(command, unknown[1]!, '--', Object.keys(flagTable));
    if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      throw new ConfigError(
        `${message.split('.')[0]}: densestream ${command.name} takes options only; see densestream ${command.name} --help`,
      );
    }
    const flag = /^Option '(-[^ ']+)/.exec(message)?.[1] ?? '';
    if (message.includes('is ambiguous')) throw new ConfigError(`${flag}: a value starting with "-" must be attached, as ${flag}=VALUE`);
    if (message.includes('argument missing')) throw new ConfigError(`${flag}: expected a value`);
    if (message.includes('does not take an argument')) throw new ConfigError(`${flag}: a switch, it takes no value`);
    throw new ConfigError(message.split('\n')[0]!);
  }
  let positional: string | undefined;
  if (command.positional) {
    if (positionals.length !== 1) {
      throw new ConfigError(
        `${command.positional.name} is required: densestream ${command.name} ${command.positional.name} [options] (${command.positional.name}: ${command.positional.description})`,
      );
    }
    positional = positionals[0];
  }
  const merged: Record<string, unknown> = {};
  const given = new Set<string>();
  const file = flags['config'];
  if (typeof file === 'string') {
    const known = Object.keys(facts).filter((k) => !facts[k]!.flagOnly);
    for (const [k, v] of Object.entries(readConfigFile(file))) {
      if (!known.includes(k)) throw unknownOption(command, k, `--config ${file}:`, known);
      merged[k] = checkOption(command, k, v, `--config ${file}:`, false);
      given.add(k);
    }
  }
  for (const [k, v] of Object.entries(flags)) {
    if (k === 'config' || v === undefined) continue;
    merged[k] = checkOption(command, k, v);
    given.add(k);
  }
  for (const name of command.required ?? []) {
    if (!given.has(name)) throw new ConfigError(`--${name} is required (see densestream ${command.name} --help)`);
  }
  // Each value is already checked; this fills the defaults.
  const values = command.options.parse(merged);
  return { values, given, ...(positional === undefined ? {} : { positional }) };
}

/** Wraps `text` to `width` columns, each line after the first indented by `indent`. */
function wrap(text: string, width: number, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** The default as the help shows it: a computed default's text, else the declared value. */
function defaultShown(f: OptionFacts): string | undefined {
  if (f.defaultText !== undefined) return f.defaultText;
  if (f.default === undefined || f.default === false) return undefined;
  return String(f.default);
}

/** `densestream NAME --help`: usage, each option with its value, choices, range and default, then the notes. */
export function commandHelp<S extends OptionsShape>(command: CommandSchema<S>, width = 100): string {
  const facts = optionFacts(command);
  const required = new Set<string>(command.required ?? []);
  const usage = [
    `densestream ${command.name}`,
    command.positional ? command.positional.name : '',
    ...[...required].map((name) => `--${name} ${facts[name]?.arg ?? 'VALUE'}`),
    '[options]',
  ]
    .filter(Boolean)
    .join(' ');
  const rows: Array<[string, string]> = [];
  if (command.positional) rows.push([command.positional.name, command.positional.description]);
  for (const [name, f] of Object.entries(facts)) {
    const value = f.type === 'boolean' ? '' : ` ${f.arg ?? (f.choices ? f.choices.join('|') : f.type === 'string' ? 'TEXT' : 'N')}`;
    const extras: string[] = [];
    if (f.choices && f.arg !== undefined) extras.push(f.choices.join('|'));
    if (
      !f.choices &&
      (f.type === 'integer' || f.type === 'number') &&
      (f.minimum !== undefined || f.maximum !== undefined || f.exclusiveMaximum !== undefined)
    ) {
      extras.push(expectedText({ ...f, expected: undefined }).replace(/^an? (integer|number)\s*/, ''));
    }
    const shown = defaultShown(f);
    if (required.has(name)) extras.push('required');
    else if (shown !== undefined) extras.push(`default ${shown}`);
    rows.push([`--${name}${value}`, `${f.description}${extras.length > 0 ? ` (${extras.join('; ')})` : ''}`]);
  }
  if (command.configFile) rows.push(['--config FILE.json', 'the same options as keys of a JSON object; flags win']);
  rows.push(['-h, --help', 'show this help']);
  const column = Math.min(28, Math.max(...rows.map(([flag]) => flag.length)) + 2);
  const body = rows
    .map(([flag, text]) => {
      const head = `  ${flag}`;
      const pad = head.length + 1 > column + 2 ? `\n${' '.repeat(column + 2)}` : ' '.repeat(column + 2 - head.length);
      return `${head}${pad}${wrap(text, width - column - 2, column + 2)}`;
    })
    .join('\n');
  const notes = command.notes
    ? `\n${command.notes
        .trim()
        .split(/\n\s*\n/)
        .map((p) => wrap(p, width, 0))
        .join('\n\n')}\n`
    : '';
  return `densestream ${command.name}: ${command.summary}\n\nUsage: ${usage}\n\nOptions:\n${body}\n${notes}`;
}
