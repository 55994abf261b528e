/** A wrong option or config key: the CLI exits with 2 before any work (DESIGN.md, "Errors"). */
export class ConfigError extends Error {}

/** Rethrows what a value's parser or opener refused as a ConfigError (exit 2): `.catch(toConfigError)`. */
export function toConfigError(err: unknown): never {
  throw err instanceof ConfigError ? err : new ConfigError(err instanceof Error ? err.message : String(err));
}
