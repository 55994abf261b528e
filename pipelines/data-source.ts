/**
 * `--data SOURCE`: the URI-like names of sources on the command line.
 *
 * | name | source |
 * |---|---|
 * | `scenes` (default) / `scenes:SIZE` / `scenes:SIZE:COUNT` | built-in synthetic scenes with ground truth (64 px, 20 000 by default) |
 * | `dir:PATH` | every image under a folder |
 * | `tar:PATTERN` | WebDataset shards: local, `https://…` or `s3://…`, e.g. `tar:data/shard-{000..099}.tar`; `tar:@LIST` reads a list file |
 * | `fashion-mnist[:DIR]` / `fashion-mnist-test[:DIR]` | Fashion-MNIST IDX files (train / test split) |
 * | `parquet:DIR` | views precomputed by `densestream precompute` (train only) |
 */
import { FASHION_MNIST_DIR, fashionMnistSource } from '../datasets/fashion-mnist.js';
import { imageFolderSource } from '../datasets/image-folder.js';
import { parquetViewsSource } from '../datasets/parquet-views.js';
import { scenesSource, type ScenesOptions } from '../datasets/scenes.js';
import type { Source } from '../datasets/source.js';
import { tarShardsSource, type TarOptions } from '../datasets/tar-shards.js';
import { positiveInt } from './options.js';

export const SOURCE_KINDS = ['scenes', 'dir', 'tar', 'fashion-mnist', 'fashion-mnist-test', 'parquet'] as const;

export interface SourceOptions {
  scenes?: ScenesOptions;
  /** Shuffle buffer, and how remote shards are read. */
  tar?: TarOptions;
  /** Per-pixel truth where a source can derive it (Fashion-MNIST's silhouettes; the scenes always carry theirs). */
  groundTruth?: boolean;
}

/** Opens the source a `--data` value names, or says what is wrong with the value. */
export async function openSource(value: string, options: SourceOptions = {}, field = '--data'): Promise<Source> {
  const colon = value.indexOf(':');
  const kind = colon < 0 ? value : value.slice(0, colon);
  const arg = colon < 0 ? '' : value.slice(colon + 1);
  switch (kind) {
    case 'scenes': {
      const [size, count, ...extra] = arg ? arg.split(':') : [];
      if (extra.length > 0) throw new Error(`${field}: expected scenes, scenes:SIZE or scenes:SIZE:COUNT, got "${value}"`);
      return scenesSource({
        ...options.scenes,
        ...(size !== undefined ? { size: positiveInt(size, `${field} scenes:SIZE`) } : {}),
        ...(count !== undefined ? { count: positiveInt(count, `${field} scenes:SIZE:COUNT`) } : {}),
      });
    }
    case 'dir':
      if (!arg) throw new Error(`${field}: dir needs a path, e.g. dir:./photos`);
      return imageFolderSource(arg);
    case 'tar':
      if (!arg)
        throw new Error(`${field}: tar needs a shard pattern, e.g. tar:data/shard-{000..009}.tar or tar:https://host/shard-{000..009}.tar`);
      return tarShardsSource(arg, options.tar);
    case 'fashion-mnist':
    case 'fashion-mnist-test':
      return fashionMnistSource(arg || FASHION_MNIST_DIR, kind === 'fashion-mnist' ? 'train' : 'test', {
        groundTruth: options.groundTruth === true,
      });
    case 'parquet':
      if (!arg) throw new Error(`${field}: parquet needs the folder precompute wrote, e.g. parquet:./views`);
      return parquetViewsSource(arg);
    default:
      throw new Error(`${field}: unknown source "${value}" (expected ${SOURCE_KINDS.join(', ')}; e.g. scenes, dir:PATH)`);
  }
}
