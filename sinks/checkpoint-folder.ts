/**
 * A checkpoint is a folder (weights, manifest, and what hooks add), replaced whole: it is
 * written as `<name>.partial`, checked, and only then swapped in, so a kill at any moment leaves
 * the last good checkpoint under its name.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';

/**
 * Writes the folder `final` through `write(partial)`, reads it back with `verify(partial)` (a
 * write the disk did not keep throws there, with the old folder intact), then swaps it in.
 */
export async function replaceFolder(
  final: string,
  write: (partial: string) => Promise<void>,
  verify: (partial: string) => void,
): Promise<void> {
  const partial = `${final}.partial`;
  rmSync(partial, { recursive: true, force: true });
  await write(partial);
  verify(partial);
  if (existsSync(final)) renameSync(final, `${final}.old`);
  renameSync(partial, final);
  rmSync(`${final}.old`, { recursive: true, force: true });
}
