/**
 * `densestream report`'s options: one declaration (flags, `--config` keys, `--help`); the run
 * and its checkpoint are checked here, before any work, without loading tfjs.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as z from 'zod';
import { ConfigError } from '../core/config-error.js';
import { parseCommand, type CommandSchema } from './command-schema.js';
import { checkpointDir } from './run-folder.js';
import { BACKEND_OPTIONS } from './shared-options.js';

export const REPORT_COMMAND = {
  name: 'report',
  summary:
    'one self-contained HTML page about a train run: curves, eval scores, training views, PCA of dense features, skipped inputs, config',
  positional: { name: 'RUN', description: 'a train --out folder' },
  configFile: true,
  options: z.object({
    out: z.string().optional().meta({ arg: 'FILE', defaultText: 'RUN/report.html', description: 'the page' }),
    images: z.number().int().min(1).max(64).default(6).meta({
      arg: 'N',
      expected: 'an integer ≥ 1, at most 64 (the page embeds every image)',
      description: 'images in the views sheet and in the PCA',
    }),
    ...BACKEND_OPTIONS,
  }),
} satisfies CommandSchema;

export type ReportConfig = Omit<z.output<typeof REPORT_COMMAND.options>, 'out'> & {
  /** The `train --out` folder. */
  run: string;
  /** The page. */
  out: string;
};

export function parseReportConfig(argv: readonly string[]): ReportConfig {
  const { values, positional } = parseCommand(REPORT_COMMAND, argv);
  const run = positional as string; // declared, so present
  if (!existsSync(run) || !statSync(run).isDirectory()) throw new ConfigError(`RUN: no folder ${run} (expected a train --out folder)`);
  checkpointDir(run, 'RUN'); // a ConfigError naming the expected file
  return { ...values, run: resolve(run), out: resolve(values.out ?? join(run, 'report.html')) };
}
