import { pack } from 'tar-stream';

/** A tar archive of `entries` (name, bytes) in memory, as WebDataset shards are written (benches and tests). */
export async function tarOf(entries: ReadonlyArray<readonly [string, Uint8Array]>): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((resolve) => p.on('end', () => resolve()));
  for (const [name, data] of entries) p.entry({ name }, Buffer.from(data));
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}
