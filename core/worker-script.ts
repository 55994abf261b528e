/** Where a module that is its own worker entry (k-means, the pixel workers) starts its workers from. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The worker script of a module that is its own entry. Compiled, the module under `dist/` is
 * the script. Run from its TypeScript source (vitest, a TS loader), it cannot be a worker's
 * entry, as Node 20 does not load .ts in a worker, so its compiled twin under `dist/` is used.
 *
 * @param moduleUrl The module's own `import.meta.url`.
 * @param compiled Its compiled path from the project root, e.g. `dist/positives/kmeans-worker.js`.
 * @param who Names the caller in the error when the compiled script is missing.
 */
export function workerScript(moduleUrl: string, compiled: string, who: string): URL {
  // Source files sit one folder below the project root, as their compiled twins sit below dist/.
  const script = moduleUrl.endsWith('.ts') ? new URL(`../${compiled}`, moduleUrl) : new URL(moduleUrl);
  if (!existsSync(script)) throw new Error(`${who}: ${fileURLToPath(script)} not found; run "npm run build" first`);
  return script;
}
