import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { ConfigError } from '../core/config-error.js';
import { commandHelp, nearestName, parseCommand, type CommandSchema, type OptionsShape } from '../pipelines/command-schema.js';
import { EVAL_COMMAND } from '../pipelines/eval-options.js';
import { EXPORT_COMMAND } from '../pipelines/export-options.js';
import { PRECOMPUTE_COMMAND } from '../pipelines/precompute-options.js';
import { PREVIEW_COMMAND } from '../pipelines/preview-options.js';
import { REPORT_COMMAND } from '../pipelines/report-options.js';
import { TRAIN_COMMAND } from '../pipelines/train-schema.js';

const TOY = {
  name: 'toy',
  summary: 'a command for the tests',
  required: ['out'] as const,
  configFile: true,
  options: z.object({
    out: z.string().optional().meta({ arg: 'DIR', description: 'where it goes' }),
    steps: z.number().int().min(1).default(200).meta({ arg: 'N', description: 'how many' }),
    rate: z.number().min(0).lt(1).default(0.5).meta({ arg: 'F', description: 'a fraction' }),
    mode: z.enum(['fast', 'slow']).default('fast').meta({ arg: 'HOW', description: 'how' }),
    dry: z.boolean().default(false).meta({ description: 'do nothing' }),
    resume: z.boolean().default(false).meta({ flagOnly: true, description: 'an action' }),
  }),
} satisfies CommandSchema;

const refusal = (argv: string[]) => {
  try {
    parseCommand(TOY, argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
};

describe('one schema per command', () => {
  it('fills defaults, reads numbers from flags, and records which options were given', () => {
    const { values, given } = parseCommand(TOY, ['--out', 'x', '--steps', '7', '--dry']);
    expect(values).toEqual({ out: 'x', steps: 7, rate: 0.5, mode: 'fast', dry: true, resume: false });
    expect([...given].sort()).toEqual(['dry', 'out', 'steps']);
  });

  it('refuses wrong values naming the flag, the expected range and the value given', () => {
    expect(refusal(['--out', 'x', '--steps', 'ten'])).toBe('--steps: expected an integer ≥ 1, got "ten"');
    expect(refusal(['--out', 'x', '--steps', '2.5'])).toBe('--steps: expected an integer ≥ 1, got "2.5"');
    expect(refusal(['--out', 'x', '--steps', ''])).toBe('--steps: expected an integer ≥ 1, got ""');
    expect(refusal(['--out', 'x', '--rate', '1'])).toBe('--rate: expected a number ≥ 0, below 1, got "1"');
    expect(refusal(['--out', 'x', '--mode', 'warp'])).toBe('--mode: expected one of fast|slow, got "warp"');
    expect(refusal(['--steps', '3'])).toBe('--out is required (see densestream toy --help)');
  });

  it('suggests the nearest name for a typo, and nothing for a name far from all', () => {
    expect(refusal(['--out', 'x', '--stpes', '3'])).toBe('unknown option --stpes (did you mean --steps?); see densestream toy --help');
    expect(refusal(['--out', 'x', '--colour', '3'])).toBe('unknown option --colour; see densestream toy --help');
    expect(nearestName('trian', ['train', 'eval'])).toBe('train');
    expect(nearestName('protocl', ['protocol', 'seed'])).toBe('protocol');
    expect(nearestName('x', ['train', 'eval'])).toBeUndefined();
  });

  it('reads --config with the same keys and checks, flags winning; actions are not config keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'densestream-schema-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ out: 'from-file', steps: 9, mode: 'slow' }));
    const { values, given } = parseCommand(TOY, ['--config', file, '--steps', '4']);
    expect(values).toMatchObject({ out: 'from-file', steps: 4, mode: 'slow' });
    expect(given.has('mode')).toBe(true);
    writeFileSync(file, JSON.stringify({ out: 'x', steps: '9' }));
    expect(refusal(['--config', file])).toBe(`--config ${file}: steps: expected an integer ≥ 1, got "9"`);
    writeFileSync(file, JSON.stringify({ out: 'x', resume: true }));
    expect(refusal(['--config', file])).toContain(`--config ${file}: unknown option "resume"`);
    writeFileSync(file, '{"out": ');
    expect(refusal(['--config', file])).toContain(`--config ${file}: cannot read it as JSON`);
    writeFileSync(file, '[1]');
    expect(refusal(['--config', file])).toBe(`--config ${file}: expected a JSON object`);
  });

  it('refuses malformed command lines as usage errors, in one line', () => {
    expect(refusal(['--out', 'x', 'extra'])).toContain("Unexpected argument 'extra'");
    expect(refusal(['--out'])).toBe('--out: expected a value');
    expect(refusal(['--out', 'x', '--dry=yes'])).toBe('--dry: a switch, it takes no value');
  });

  it('writes --help from the schema: usage with required options, each option with its value, choices, range and default', () => {
    const help = commandHelp(TOY);
    expect(help).toContain('Usage: densestream toy --out DIR [options]');
    expect(help).toMatch(/--steps N +how many \(≥ 1; default 200\)/);
    expect(help).toMatch(/--mode HOW +how \(fast\|slow; default fast\)/);
    expect(help).toMatch(/--rate F +a fraction \(≥ 0, below 1; default 0\.5\)/);
    expect(help).toMatch(/--out DIR +where it goes \(required\)/);
    expect(help).toContain('--config FILE.json');
  });

  const helpAndNames = <S extends OptionsShape>(c: CommandSchema<S>) => [c.name, commandHelp(c), Object.keys(c.options.shape)] as const;
  it.each([
    helpAndNames(TRAIN_COMMAND),
    helpAndNames(PRECOMPUTE_COMMAND),
    helpAndNames(EXPORT_COMMAND),
    helpAndNames(EVAL_COMMAND),
    helpAndNames(REPORT_COMMAND),
    helpAndNames(PREVIEW_COMMAND),
  ])('documents every option of %s', (_name, help, names) => {
    for (const name of names) expect(help).toContain(`--${name}`);
  });
});
