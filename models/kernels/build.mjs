#!/usr/bin/env node
/**
 * Builds the project's C sources into WebAssembly (`npm run build:kernels`):
 * - models/kernels/kernels.c into models/kernels/kernels-wasm.ts, the backend's kernels, in two
 *   variants: `shared` imports a shared memory (the threaded tfjs build, whose heap worker
 *   threads also see) and `plain` a private one (the single-threaded SIMD build); each again
 *   with relaxed SIMD (`sharedRelaxed`, `plainRelaxed`), whose products' inner loops use
 *   `f32x4.relaxed_madd` (a fused multiply-add where the CPU has one), for runtimes that
 *   validate it (Node 22, Chrome 114 and later);
 * - operators/saliency.c into operators/saliency-wasm.ts, the saliency maps' pixel loops, `plain`.
 *
 * The bytes are inlined as base64 so that `tsc` alone ships them, and each source's SHA-256 is
 * recorded so a test catches a source edited without a rebuild.
 *
 * Needs Debian's clang-14, lld-14 and llvm-14 (`apt-get install clang-14 lld-14 llvm-14`: the compiler,
 * wasm-ld, and llvm-objdump for the check below), and clang-19, lld-19 and llvm-19 for the relaxed variants
 * (Debian 12 has both; clang-14's wasm_simd128.h has no relaxed intrinsics); users never run it.
 * The SIMD variants stay on clang-14: its bytes are the ones every result so far was measured
 * with, and clang-19's ran the MoCo v2 step no faster (docs/performance.md, "Measured: fused
 * multiply-add").
 */
import { execFileSync } from 'node:child_process';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

// Node 20 compiles relaxed SIMD only behind this flag (Node 22 ships it, and refuses the flag);
// the checks below compile every variant.
if (Number(process.versions.node.split('.')[0]) < 22) setFlagsFromString('--experimental-wasm-relaxed-simd');

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const clang = process.env.CLANG ?? 'clang-14';
const clangRelaxed = process.env.CLANG_RELAXED ?? 'clang-19';
const objdump = process.env.OBJDUMP ?? 'llvm-objdump-14';
const objdumpRelaxed = process.env.OBJDUMP_RELAXED ?? 'llvm-objdump-19';
const common = [
  '--target=wasm32',
  '-O3',
  '-msimd128',
  '-nostdlib',
  '-ffreestanding',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-Wl,--no-entry',
  '-Wl,--import-memory',
  '-Wl,-z,stack-size=0',
  '-Wl,--strip-all',
];
const sharedMemory = ['-matomics', '-mbulk-memory', '-Wl,--shared-memory', '-Wl,--max-memory=4294967296'];
const variants = {
  shared: { compiler: clang, disassembler: objdump, flags: sharedMemory, relaxed: false },
  plain: { compiler: clang, disassembler: objdump, flags: [], relaxed: false },
  sharedRelaxed: { compiler: clangRelaxed, disassembler: objdumpRelaxed, flags: ['-mrelaxed-simd', ...sharedMemory], relaxed: true },
  plainRelaxed: { compiler: clangRelaxed, disassembler: objdumpRelaxed, flags: ['-mrelaxed-simd'], relaxed: true },
};
/** f32x4.relaxed_madd: 0xfd, then 0x105 in LEB128. */
const RELAXED_MADD = Buffer.from([0xfd, 0x85, 0x02]);

/** Compiles `source` in each variant; the base64 bytes by variant. */
function compile(source, names) {
  const work = mkdtempSync(join(tmpdir(), 'densestream-kernels-'));
  const built = {};
  try {
    for (const name of names) {
      const out = join(work, `${name}.wasm`);
      const { compiler, disassembler, flags, relaxed } = variants[name];
      execFileSync(compiler, [...common, ...flags, '-o', out, source], { stdio: 'inherit' });
      const bytes = readFileSync(out);
      const module = new WebAssembly.Module(bytes);
      // The module writes only where it is told: one import (the memory), no globals, no stack.
      const imports = WebAssembly.Module.imports(module);
      if (imports.length !== 1 || imports[0].kind !== 'memory') throw new Error(`${name}: unexpected imports ${JSON.stringify(imports)}`);
      const exported = WebAssembly.Module.exports(module);
      if (exported.some((e) => e.kind !== 'function')) throw new Error(`${name}: exports more than functions: ${JSON.stringify(exported)}`);
      const text = execFileSync(disassembler, ['-d', out], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
      if (/global\.(get|set)/.test(text)) throw new Error(`${name}: uses a global (a stack frame?); kernels must not`);
      // The relaxed variants fuse their multiply-adds, the others must not need relaxed SIMD at all.
      if (bytes.includes(RELAXED_MADD) !== relaxed) throw new Error(`${name}: relaxed_madd ${relaxed ? 'missing' : 'present'}`);
      built[name] = bytes.toString('base64');
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return built;
}

const sha = (source) => createHash('sha256').update(readFileSync(source)).digest('hex');

{
  const source = join(here, 'kernels.c');
  const built = compile(source, ['shared', 'plain', 'sharedRelaxed', 'plainRelaxed']);
  const hash = sha(source);
  writeFileSync(
    join(here, 'kernels-wasm.ts'),
    `// Generated by models/kernels/build.mjs from kernels.c; do not edit.
/** SHA-256 of the kernels.c these bytes were built from. */
export const KERNELS_SOURCE_SHA256 = '${hash}';
/** The module importing a shared memory (threaded tfjs build). */
export const KERNELS_SHARED_BASE64 =
  '${built.shared}';
/** The module importing a private memory (single-threaded SIMD build). */
export const KERNELS_PLAIN_BASE64 =
  '${built.plain}';
/** KERNELS_SHARED_BASE64 built with relaxed SIMD (fused multiply-adds). */
export const KERNELS_SHARED_RELAXED_BASE64 =
  '${built.sharedRelaxed}';
/** KERNELS_PLAIN_BASE64 built with relaxed SIMD (fused multiply-adds). */
export const KERNELS_PLAIN_RELAXED_BASE64 =
  '${built.plainRelaxed}';
`,
  );
  const sizes = Object.entries(built).map(([name, b64]) => `${name} ${b64.length}`);
  console.log(`kernels-wasm.ts: ${sizes.join(', ')} base64 chars, source ${hash.slice(0, 12)}`);
}

{
  const source = join(root, 'operators', 'saliency.c');
  const built = compile(source, ['plain']);
  const hash = sha(source);
  writeFileSync(
    join(root, 'operators', 'saliency-wasm.ts'),
    `// Generated by models/kernels/build.mjs from operators/saliency.c; do not edit.
/** SHA-256 of the saliency.c these bytes were built from. */
export const SALIENCY_SOURCE_SHA256 = '${hash}';
/** The module, importing its own (private) memory. */
export const SALIENCY_WASM_BASE64 =
  '${built.plain}';
`,
  );
  console.log(`saliency-wasm.ts: ${built.plain.length} base64 chars, source ${hash.slice(0, 12)}`);
}
