import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { relaxedSimdSupported } from '../models/relaxed-simd.js';
import { DEFAULT_SPIN_US } from '../models/kernels/pool.js';

/** Small helpers every benchmark shares: JSON lines out, checked numbers in. */

/**
 * Prints one JSON line on stdout: numbers of magnitude ≥ 1 to 0.01, smaller ones to 4 significant
 * digits, enough for a kNN accuracy on 10 000 images (0.7456) and its gain (0.0144), which
 * rounding everything to 0.01 erased.
 */
export function printJson(record: Record<string, unknown>): void {
  const round = (v: number) => (Math.abs(v) >= 1 ? Math.round(v * 100) / 100 : Number(v.toPrecision(4)));
  const rounded = JSON.stringify(record, (_, v: unknown) =>
    typeof v === 'number' && !Number.isInteger(v) && Number.isFinite(v) ? round(v) : v,
  );
  process.stdout.write(`${rounded}\n`);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Median ms of `call(i)` for i = 1…calls, after an untimed `call(0)`. The call must finish its
 * work before it returns (wasm kernels run synchronously; read the result otherwise).
 */
export function medianCallMs(call: (i: number) => void, calls: number): number {
  call(0);
  const ms: number[] = [];
  for (let i = 1; i <= calls; i++) {
    const t0 = performance.now();
    call(i);
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

/** Runs `body`, which may set the environment variable `name` as it goes, then puts it back as it was. */
export function restoringEnv<T>(name: string, body: () => T): T {
  const previous = process.env[name];
  try {
    return body();
  } finally {
    if (previous === undefined) delete process.env[name];
    else process.env[name] = previous;
  }
}

/** max |a − b| over the reference's largest magnitude (the absolute error where the reference is all zeros). */
export function relativeError(actual: ArrayLike<number>, reference: ArrayLike<number>): number {
  if (actual.length !== reference.length) return Number.POSITIVE_INFINITY;
  let err = 0;
  let mag = 0;
  for (let i = 0; i < reference.length; i++) {
    err = Math.max(err, Math.abs((actual[i] as number) - (reference[i] as number)));
    mag = Math.max(mag, Math.abs(reference[i] as number));
  }
  return mag === 0 ? err : err / mag;
}

/** Debian's Python, for the PyTorch / torchvision sides of the benchmarks. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

/** Whether `SYSTEM_PYTHON` can import `module` (python3-torch, python3-torchvision). */
export function pythonHas(module: string): boolean {
  return spawnSync(SYSTEM_PYTHON, ['-c', `import ${module}`]).status === 0;
}

/**
 * Runs a benchmark's other side (a child bench, a PyTorch script), passes its JSON lines
 * through to our stdout, and returns its last line parsed.
 */
export function runForJson<T>(label: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): T {
  const stdout = runChecked(label, command, args, env);
  process.stdout.write(stdout);
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as T;
}

/**
 * A child's stdout; throws, naming `label`, where it failed or was stopped. Exit 130 is a
 * stop too: `densestream train` checkpoints on Ctrl-C and exits so.
 */
export function runChecked(label: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  // A node child here is the bench runner or the CLI, which set Node 20's relaxed-SIMD flag themselves.
  const run = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (run.signal || run.status === 130) throw new Error(`${label} stopped by ${run.signal ?? 'SIGINT'}`);
  if (run.status !== 0) throw new Error(`${label} failed:\n${run.stderr}`);
  return run.stdout;
}

/** A file next to the compiled benchmarks, or a source file of `bench/` (the Python sides). */
export function benchFile(name: string, source = false): string {
  return fileURLToPath(new URL(source ? `../../bench/${name}` : `./${name}`, import.meta.url));
}

/**
 * `--kernels on|off|direct|xnnpack|sleep|simd|relaxed-simd|both|all`, or a comma list of settings:
 * densestream's wasm kernels in the child processes. `on` is their default for the runtime; `direct`
 * is them without the Winograd convolutions; `xnnpack` leaves the forward convolutions Winograd
 * does not take to XNNPACK, as before densestream's direct convolution; `sleep` has the kernels'
 * threads sleep as soon as they find no work, as before they spun (DENSESTREAM_POOL_SPIN_US=0); `simd` and `relaxed-simd`
 * pin the build (`relaxed-simd` is refused at once on a runtime that does not compile relaxed
 * SIMD). A setting may join several of these with `+` (`simd+xnnpack`: the build and
 * convolutions Node 20 ran before 2026-12-05); `both` runs off and on side by side, `all` off,
 * direct and on.
 */
export type KernelsChoice = string;
const KERNELS_PARTS = ['on', 'off', 'direct', 'xnnpack', 'sleep', 'simd', 'relaxed-simd'] as const;
type KernelsPart = (typeof KERNELS_PARTS)[number];

/** A setting's parts, or undefined for one that is not a `+` join of distinct parts that fit together. */
function kernelsParts(choice: string): KernelsPart[] | undefined {
  const parts = choice.split('+');
  if (!parts.every((p) => (KERNELS_PARTS as readonly string[]).includes(p)) || new Set(parts).size !== parts.length) return undefined;
  if (parts.length > 1 && (parts.includes('on') || parts.includes('off'))) return undefined; // on is the rest's default, off has no kernels to set
  if (parts.includes('simd') && parts.includes('relaxed-simd')) return undefined;
  return parts as KernelsPart[];
}

export function parseKernels(value: string): KernelsChoice[] {
  if (value === 'both') return ['off', 'on'];
  if (value === 'all') return ['off', 'direct', 'on'];
  const choices = value.split(',');
  const parts = choices.map(kernelsParts);
  // the same parts in another order are the same setting
  const distinct = new Set(parts.map((p) => (p ? [...p].sort().join('+') : '')));
  if (parts.some((p) => p === undefined) || distinct.size !== choices.length)
    throw new Error(
      `--kernels: expected both, all, or a list of distinct settings, each ${KERNELS_PARTS.join('|')} or a + join of direct, xnnpack, sleep and one build, got "${value}"`,
    );
  // refused here, not minutes later by the first child that needs it
  if (parts.some((p) => p!.includes('relaxed-simd'))) requireRelaxedSimd('--kernels relaxed-simd');
  return choices;
}

/** Refuses a bench `option` that needs the relaxed-SIMD build on a runtime that cannot compile it. */
export function requireRelaxedSimd(option: string): void {
  if (!relaxedSimdSupported())
    throw new Error(
      `${option}: Node ${process.versions.node} does not compile relaxed SIMD (Node 22 does, and Node 20 unless DENSESTREAM_RELAXED_SIMD=0)`,
    );
}
/** The environment that sets the kernels in a child (models/backend.ts and models/kernels/{winograd,direct-conv}.ts read it). */
export function kernelsEnv(choice: KernelsChoice): NodeJS.ProcessEnv {
  const parts = kernelsParts(choice);
  if (parts === undefined) throw new Error(`--kernels: no setting "${choice}"`);
  return {
    DENSESTREAM_WASM_KERNELS: parts.includes('off') ? '0' : '1',
    DENSESTREAM_WINOGRAD: parts.includes('direct') ? '0' : '1',
    DENSESTREAM_DIRECT_CONV: parts.includes('xnnpack') ? '0' : '1',
    DENSESTREAM_POOL_SPIN_US: parts.includes('sleep') ? '0' : String(DEFAULT_SPIN_US),
    ...(parts.includes('simd')
      ? { DENSESTREAM_RELAXED_SIMD: '0' }
      : parts.includes('relaxed-simd')
        ? { DENSESTREAM_RELAXED_SIMD: '1' }
        : {}),
  };
}

/** One child run of the set: its round (from 1), method, the other settings that vary, and its ms a step. */
export interface BenchRun {
  round: number;
  method: string;
  setting: Record<string, string>;
  msPerStep: number;
}

/** A setting's summary line: its method and setting keys, the medians, and its ratios to the base. */
export type RoundSummary = Record<string, unknown> & {
  method: string;
  msPerStep: number;
  msPerSteps: number[];
  against?: string;
  ratio?: number;
  ratios?: number[];
};

/**
 * Per method and setting, the median ms a step over the rounds and, where `base` ran in the same
 * round with the same setting, the ratio to it in each round and their median. Ratios are taken
 * within a round, never between medians, because a 2-core machine drifts between rounds by more
 * than the methods differ.
 */
export function roundSummaries(runs: readonly BenchRun[], base: string): RoundSummary[] {
  const settingOf = (r: BenchRun) => JSON.stringify(r.setting);
  const baseMs = new Map(runs.filter((r) => r.method === base).map((r) => [`${r.round} ${settingOf(r)}`, r.msPerStep]));
  const groups = new Map<string, BenchRun[]>();
  for (const r of runs) {
    const key = `${r.method} ${settingOf(r)}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((group) => {
    const first = group[0]!;
    const ratios =
      first.method === base
        ? []
        : group.flatMap((r) => {
            const b = baseMs.get(`${r.round} ${settingOf(r)}`);
            return b === undefined ? [] : [r.msPerStep / b];
          });
    return {
      method: first.method,
      ...first.setting,
      msPerStep: median(group.map((r) => r.msPerStep)),
      msPerSteps: group.map((r) => r.msPerStep),
      ...(ratios.length > 0 ? { against: base, ratio: median(ratios), ratios } : {}),
    };
  });
}
