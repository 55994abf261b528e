/** densestream's own `package.json`: its version and pinned dependency versions (for `--version`, `backend`, manifests). */
import { readFileSync } from 'node:fs';

export interface PackageJson {
  version: string;
  dependencies: Record<string, string>;
}

export function packageJson(): PackageJson {
  return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as PackageJson;
}
