#!/usr/bin/env node
/**
 * The `densestream` command line. Each command's options, checks and help come from its schema
 * (`*-options.ts`, `command-schema.ts`); this file only routes. Exit codes are the same for
 * every command: 0 done, 1 a runtime failure, 2 a wrong command line (nothing was run),
 * 130 interrupted (Ctrl-C, after a checkpoint where the job has one).
 */
import { ConfigError } from '../core/config-error.js';
import { poolSpinUs } from '../models/kernels/pool.js';
import { relaxedSimdChoice, useRelaxedSimd } from '../models/relaxed-simd.js';
import { commandHelp, nearestName, type CommandSchema, type OptionsShape } from './command-schema.js';
import { packageJson } from './package-json.js';
import { DEFAULT_RECIPE } from './recipe.js';
import { switchOnRelaxedSimd } from './relaxed-simd-flag.js';

interface CommandEntry {
  /** The command's schema module: light (no tfjs, sharp or Arrow), so help and usage errors answer at once. */
  describe: () => Promise<{ summary: string; help: () => string }>;
  /**
   * Parses the arguments with the schema module, then loads the command and runs it: TensorFlow.js,
   * sharp and Arrow take seconds to import, and a wrong option is refused before any of them.
   * Resolves with the exit code, or nothing for 0.
   */
  run: (argv: string[]) => Promise<number | void>;
}

const described = <S extends OptionsShape>(schema: CommandSchema<S>) => ({ summary: schema.summary, help: () => commandHelp(schema) });

const COMMANDS: Record<string, CommandEntry> = {
  backend: {
    describe: async () => described((await import('./backend-command.js')).BACKEND_COMMAND),
    run: async (argv) => {
      const { parseBackendConfig, backendCommand } = await import('./backend-command.js');
      return backendCommand(parseBackendConfig(argv));
    },
  },
  train: {
    describe: async () => described((await import('./train-schema.js')).TRAIN_COMMAND),
    run: async (argv) => {
      const config = (await import('./train-options.js')).parseTrainConfig(argv);
      return (await import('./train-command.js')).trainCommand(config);
    },
  },
  precompute: {
    describe: async () => described((await import('./precompute-options.js')).PRECOMPUTE_COMMAND),
    run: async (argv) => {
      const config = (await import('./precompute-options.js')).parsePrecomputeConfig(argv);
      return (await import('./precompute.js')).precomputeCommand(config);
    },
  },
  export: {
    describe: async () => described((await import('./export-options.js')).EXPORT_COMMAND),
    run: async (argv) => {
      const config = (await import('./export-options.js')).parseExportConfig(argv);
      return (await import('./export.js')).exportCommand(config);
    },
  },
  eval: {
    describe: async () => described((await import('./eval-options.js')).EVAL_COMMAND),
    run: async (argv) => {
      const config = (await import('./eval-options.js')).parseEvalConfig(argv);
      return (await import('./evaluate.js')).evalCommand(config);
    },
  },
  preview: {
    describe: async () => described((await import('./preview-options.js')).PREVIEW_COMMAND),
    run: async (argv) => {
      const config = (await import('./preview-options.js')).parsePreviewConfig(argv);
      return (await import('./preview.js')).previewCommand(config);
    },
  },
  report: {
    describe: async () => described((await import('./report-options.js')).REPORT_COMMAND),
    run: async (argv) => {
      const config = (await import('./report-options.js')).parseReportConfig(argv);
      return (await import('./report.js')).reportCommand(config);
    },
  },
};

async function overview(): Promise<string> {
  const names = Object.keys(COMMANDS);
  const summaries = await Promise.all(names.map(async (name) => (await COMMANDS[name]!.describe()).summary));
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const lines = names.map((name, i) => `  ${name.padEnd(width)}${summaries[i]}`);
  return `densestream: streaming self-supervised dense representation learning

Usage: densestream <command> [options]

Commands:
${lines.join('\n')}

Run with no options, train runs the default recipe: ${DEFAULT_RECIPE.method} on the built-in scenes, ${DEFAULT_RECIPE.steps} steps at ${DEFAULT_RECIPE.size} px.
densestream <command> --help lists a command's options, their ranges and defaults.

Options:
  -h, --help     show this help
  -v, --version  print the version
`;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(await overview());
    return 0;
  }
  if (command === '-v' || command === '--version') {
    process.stdout.write(`${packageJson().version}\n`);
    return 0;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    const near = nearestName(command, Object.keys(COMMANDS));
    process.stderr.write(
      `densestream: unknown command "${command}"${near ? ` (did you mean ${near}?)` : ''}; commands: ${Object.keys(COMMANDS).join(', ')} (see --help)\n`,
    );
    return 2;
  }
  const options = rest.slice(0, rest.includes('--') ? rest.indexOf('--') : rest.length);
  if (options.includes('--help') || options.includes('-h')) {
    process.stdout.write((await entry.describe()).help());
    return 0;
  }
  try {
    // DENSESTREAM_RELAXED_SIMD and DENSESTREAM_POOL_SPIN_US are read before any command runs: a
    // wrong value, or a requirement this runtime cannot meet, is exit 2 with nothing written.
    // Node 20's flag goes on first.
    switchOnRelaxedSimd();
    useRelaxedSimd(relaxedSimdChoice(undefined));
    poolSpinUs();
    return (await entry.run(rest)) ?? 0;
  } catch (err) {
    process.stderr.write(`densestream ${command}: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof ConfigError ? 2 : 1; // a wrong option: exit 2, nothing was run
  }
}

process.exitCode = await main(process.argv.slice(2));
