/**
 * Whether densestream's wasm kernels run their relaxed-SIMD build (fused multiply-adds,
 * models/kernels/kernels.c's `MADD`): what the runtime compiles, and what the user asked for
 * (`selectBackend`'s `relaxedSimd`, else DENSESTREAM_RELAXED_SIMD). No tfjs here, so the CLI
 * can refuse a wrong setting before it loads the engine.
 */
import { ConfigError } from '../core/config-error.js';
import { webAssembly } from '../core/webassembly.js';

/** true requires the relaxed-SIMD build, false keeps the SIMD one, 'auto' takes relaxed where the runtime has it. */
export type RelaxedSimdChoice = boolean | 'auto';

/** `() → v128` returning `f32x4.relaxed_madd` of three zero constants: the smallest module that needs relaxed SIMD. */
function probeModule(): Uint8Array {
  const zero = [0xfd, 0x0c, ...new Array<number>(16).fill(0)]; // v128.const 0
  const body = [0x00, ...zero, ...zero, ...zero, 0xfd, 0x85, 0x02, 0x0b]; // no locals; relaxed_madd; end
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // magic, version 1
    ...[0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b], // types: () → v128
    ...[0x03, 0x02, 0x01, 0x00], // one function of type 0
    ...[0x0a, body.length + 2, 0x01, body.length, ...body], // its code
  ]);
}

let supported = false;

/**
 * Whether this runtime compiles relaxed SIMD: Node 22 and Chrome 114 on; Node 20 only with
 * --experimental-wasm-relaxed-simd, which the CLI sets itself (pipelines/relaxed-simd-flag.ts).
 * Only a yes is kept: a no is asked again, as the flag may be set after a first probe.
 */
export function relaxedSimdSupported(): boolean {
  supported ||= webAssembly.validate(probeModule());
  return supported;
}

/** The choice the option makes, else DENSESTREAM_RELAXED_SIMD: 1 (required), 0 (off), unset (auto); any other value is refused. */
export function relaxedSimdChoice(option: RelaxedSimdChoice | undefined, env = process.env['DENSESTREAM_RELAXED_SIMD']): RelaxedSimdChoice {
  if (option !== undefined) return option;
  if (env === undefined || env === '') return 'auto';
  if (env === '0' || env === '1') return env === '1';
  throw new ConfigError(`DENSESTREAM_RELAXED_SIMD: expected 0 (off) or 1 (required), got "${env}"`);
}

/**
 * Whether to run the relaxed-SIMD build: `choice` against what the runtime compiles. A requirement
 * the runtime cannot meet is refused (`requiredBy` names who asked), never quietly dropped.
 */
export function useRelaxedSimd(
  choice: RelaxedSimdChoice,
  runtime = relaxedSimdSupported(),
  requiredBy = 'DENSESTREAM_RELAXED_SIMD=1',
): boolean {
  if (choice === false) return false;
  if (choice === true && !runtime)
    throw new ConfigError(
      `relaxed SIMD was required (${requiredBy}), but Node ${process.versions.node} does not compile it: ` +
        'Node 22 and later do, Node 20 with --experimental-wasm-relaxed-simd',
    );
  return runtime;
}
