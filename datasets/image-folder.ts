/**
 * `dir:PATH` — every image under a folder, recursively. Ids are paths relative to the folder
 * (with `/`), sorted, so they are stable across machines; the epoch order shuffles them.
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

/** Lists the folder once; reads a file's bytes when its sample is pulled. */
export async function imageFolderSource(root: string): Promise<RandomAccessSource> {
  let files: string[];
  try {
    files = await listImages(root);
  } catch (err) {
    throw new Error(`dir:${root}: cannot list the folder (${err instanceof Error ? err.message : String(err)})`);
  }
  if (files.length === 0) throw new Error(`dir:${root}: no images found (looked for ${IMAGE_EXTENSIONS.join(' ')})`);
  return {
    name: `dir:${root}`,
    size: files.length,
    id: (i) => files[i] as string,
    read: async (i) => {
      const id = files[i] as string;
      const bytes = await readFile(join(root, id));
      return { id, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
    },
  };
}
