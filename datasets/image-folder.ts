/**
 * `dir:PATH` — every image under a folder, recursively. Ids are paths relative to the folder
 * (with `/`), sorted, so they are stable across machines; the epoch order shuffles them.
 *
 * Labels follow torchvision's ImageFolder: when every image sits inside a first-level
 * sub-folder and there are at least two, each sub-folder is a class, numbered in sorted order
 * (`classes`), and its images carry that label. Otherwise the images have no label.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { RandomAccessSource } from './source.js';

/** Extensions tried; sharp decides at decode time whether it can read each file. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif', '.avif', '.heic', '.heif'];

async function listImages(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && IMAGE_EXTENSIONS.some((ext) => e.name.toLowerCase().endsWith(ext)))
    .map((e) => relative(root, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort();
}

/** An image folder: a random-access source, with its class names when it is laid out as ImageFolder. */
export type ImageFolderSource = RandomAccessSource & { readonly classes?: readonly string[] };

/** The first-level folder of each file as its class, when every file has one and there are at least two. */
function folderClasses(files: readonly string[]): { classes: string[]; labels: Int32Array } | undefined {
  const folders = files.map((f) => (f.includes('/') ? f.slice(0, f.indexOf('/')) : undefined));
  if (folders.some((f) => f === undefined)) return undefined;
  const classes = [...new Set(folders as string[])].sort();
  if (classes.length < 2) return undefined;
  const index = new Map(classes.map((c, i) => [c, i]));
  return { classes, labels: Int32Array.from(folders, (f) => index.get(f as string) as number) };
}

/** Lists the folder once; reads a file's bytes when its sample is pulled. */
export async function imageFolderSource(root: string): Promise<ImageFolderSource> {
  let files: string[];
  try {
    files = await listImages(root);
  } catch (err) {
    throw new Error(`dir:${root}: cannot list the folder (${err instanceof Error ? err.message : String(err)})`);
  }
  if (files.length === 0) throw new Error(`dir:${root}: no images found (looked for ${IMAGE_EXTENSIONS.join(' ')})`);
  const labelled = folderClasses(files);
  return {
    name: `dir:${root}`,
    size: files.length,
    ...(labelled ? { classes: labelled.classes } : {}),
    id: (i) => files[i] as string,
    read: async (i) => {
      const id = files[i] as string;
      const bytes = await readFile(join(root, id));
      return {
        id,
        bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        ...(labelled ? { label: labelled.labels[i] as number } : {}),
      };
    },
  };
}
