/**
 * Node 20 (V8 11.3) compiles relaxed SIMD (the kernels' fused multiply-adds, models/kernels/kernels.c's
 * `MADD`) only behind V8's --experimental-wasm-relaxed-simd; later Nodes ship it on (22 refuses the
 * flag). The CLI and the benchmarks own their process, so they set the flag before densestream's
 * kernels compile (V8 reads it per compilation), and the relaxed build runs on Node 20 as it does on
 * 22. A library import never changes its host's V8 flags: `selectBackend` there takes what the
 * runtime compiles.
 */
import { setFlagsFromString } from 'node:v8';
import { relaxedSimdSupported } from '../models/relaxed-simd.js';

/** The V8 flag itself, which Node 20's child processes are also started with where they need it. */
export const RELAXED_SIMD_FLAG = '--experimental-wasm-relaxed-simd';

/**
 * Switches relaxed SIMD on for this process where the runtime has it behind the flag, unless
 * DENSESTREAM_RELAXED_SIMD=0 keeps the SIMD build (to reproduce a figure made with it to the
 * digit). Returns whether this runtime now compiles relaxed SIMD. Any other value of the variable
 * is left to `relaxedSimdChoice`, which refuses a wrong one.
 */
export function switchOnRelaxedSimd(env = process.env['DENSESTREAM_RELAXED_SIMD'], nodeVersion = process.versions.node): boolean {
  if (relaxedSimdSupported()) return true;
  // Node 20's V8 holds the final relaxed-SIMD opcodes behind the flag; older ones do not, newer ones need none.
  if (env === '0' || Number(nodeVersion.split('.')[0]) !== 20) return false;
  setFlagsFromString(RELAXED_SIMD_FLAG);
  return relaxedSimdSupported();
}
