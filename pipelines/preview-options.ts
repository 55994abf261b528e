/** `densestream preview`'s options: one declaration (flags, `--config` keys, `--help`), free of tfjs and sharp. */
import * as z from 'zod';
import { PRESETS } from '../operators/augment-presets.js';
import { MASK_METHODS } from '../operators/foreground-mask.js';
import { parseCommand, type CommandSchema } from './command-schema.js';
import { SALIENCY_SIZE_OPTION, settleSaliencySize, usesSaliency } from './shared-options.js';

export const PREVIEW_COMMAND = {
  name: 'preview',
  summary:
    "PNG contact sheets of what the data plane makes of a source: each image with its views' boxes, attention and mask overlays, and the views",
  required: ['out'] as const,
  configFile: true,
  options: z.object({
    data: z
      .string()
      .default('scenes')
      .meta({ arg: 'SOURCE', description: 'the images: scenes, scenes:SIZE, dir:PATH, tar:PATTERN, fashion-mnist[:DIR]' }),
    out: z.string().optional().meta({ arg: 'DIR', description: 'the folder of the sheets' }),
    count: z.number().int().min(1).default(12).meta({ arg: 'N', description: 'images shown, six to a sheet' }),
    seed: z.number().int().min(0).default(0).meta({ arg: 'S', description: 'seeds the order and every view' }),
    size: z.number().int().min(16).default(96).meta({ arg: 'PX', description: 'side of every view, in pixels' }),
    preset: z.enum(PRESETS).default('mocov2').meta({ arg: 'NAME', description: 'the views and their augmentation' }),
    masks: z.enum(MASK_METHODS).default('saliency').meta({ arg: 'METHOD', description: 'the foreground masks shown' }),
    attention: z.string().default('boundary').meta({
      arg: 'SOURCE',
      description: "the attention map: boundary, frequency-tuned, model:PATH (a tfjs model on disk), encoder:RUN (a train run's encoder)",
    }),
    ...SALIENCY_SIZE_OPTION,
  }),
} satisfies CommandSchema;

export type PreviewConfig = Omit<z.output<typeof PREVIEW_COMMAND.options>, 'out'> & { out: string };

export function parsePreviewConfig(argv: readonly string[]): PreviewConfig {
  const { values, given } = parseCommand(PREVIEW_COMMAND, argv);
  const c = values as PreviewConfig; // --out is required
  // Every sheet shows an attention view, so a saliency --attention always makes maps.
  c['saliency-size'] = settleSaliencySize(c['saliency-size'], given, {
    size: c.size,
    uses: usesSaliency('none', true, c.attention),
    nowhere: `--attention ${c.attention} is not a saliency method`,
  });
  return c;
}
