/**
 * `npm run bench -- remote [--shards 60] [--cut 0.01] [--rounds 5] [--in-flight 2] [--stage read|decode]`: samples per second read
 * from tar shards on local disk, from the same shards served over loopback HTTP, and over HTTP
 * with a fraction of the responses cut mid-body (resumed by Range requests), in alternating
 * rounds of one run. The shards hold the 600-photo corpus of `bench pipeline` (about 500×375
 * JPEGs). `--stage read` (default) reads the shards front to back through `tarShardsSource`
 * (archive parsing, grouping, the shuffle buffer): the transport alone. `--stage decode` adds
 * the pipeline's decode stage, as a job sees it.
 * Prints one JSON line per round and a summary.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { lastValueFrom, tap } from 'rxjs';
import { readSamples } from '../datasets/source.js';
import { tarShardsSource } from '../datasets/tar-shards.js';
import { decode } from '../operators/decode.js';
import { fromSource } from '../operators/from-source.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { positiveInt } from '../pipelines/options.js';
import { photoCorpus } from './photo-corpus.js';
import { median, printJson } from './report.js';
import { tarOf } from './tar-of.js';

/** The corpus as `shards` tar files beside it (built once). */
async function shardCorpus(shards: number): Promise<{ dir: string; names: string[]; bytes: number }> {
  const photos = await photoCorpus(600);
  const dir = `${photos}-tar${shards}`;
  const names = Array.from({ length: shards }, (_, s) => `shard-${String(s).padStart(4, '0')}.tar`);
  if (!existsSync(join(dir, names[names.length - 1] as string))) {
    mkdirSync(dir, { recursive: true });
    const files = readdirSync(photos).sort();
    for (let s = 0; s < shards; s++) {
      const entries: Array<[string, Uint8Array]> = [];
      for (let i = s; i < files.length; i += shards) {
        const f = files[i] as string;
        entries.push(
          [`photos/${f}`, readFileSync(join(photos, f))],
          [`photos/${f.replace(/\.[^.]+$/, '')}.cls`, Buffer.from(String(i % 10))],
        );
      }
      writeFileSync(join(dir, names[s] as string), await tarOf(entries));
    }
  }
  const bytes = names.reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);
  return { dir, names, bytes };
}

/** Reads every sample of `pattern` once; with `decode`, through the pipeline's decode stage too (224-px short side, as `bench pipeline`). */
async function readAll(
  pattern: string,
  shardsInFlight: number,
  decoding: boolean,
): Promise<{ samples: number; seconds: number; retries: number }> {
  let samples = 0;
  let retries = 0;
  const t0 = performance.now();
  const source = tarShardsSource(pattern, { shuffleBuffer: 100, shardsInFlight });
  const stream = readSamples(source, { seed: 0 }, (r) => {
    if (r.stage === 'fetch') retries++;
  });
  if (decoding) {
    const budget = new SampleBudget(64);
    await lastValueFrom(
      fromSource(stream, budget).pipe(
        decode({ minSide: Math.ceil(224 / Math.sqrt(0.2)), concurrency: 8, onSkip: () => budget.release() }),
        tap(() => {
          samples++;
          budget.release();
        }),
      ),
      { defaultValue: undefined },
    );
  } else for await (const _ of stream) samples++;
  return { samples, seconds: (performance.now() - t0) / 1000, retries };
}

/** A shard server in a child process; resolves once it listens. */
async function serve(
  dir: string,
  cut: number,
  seed: number,
): Promise<{ url: string; stop: () => Promise<{ cuts: number; requests: number }> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./serve-shards.js', import.meta.url)), dir, String(cut), String(seed)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = createInterface({ input: child.stdout });
  const [first] = (await once(lines, 'line')) as [string];
  const { url } = JSON.parse(first) as { url: string };
  return {
    url,
    stop: async () => {
      const report = new Promise<string>((resolve) => createInterface({ input: child.stderr }).once('line', resolve));
      child.kill('SIGTERM');
      return JSON.parse(await report) as { cuts: number; requests: number };
    },
  };
}

export async function remoteBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      shards: { type: 'string', default: '60' },
      cut: { type: 'string', default: '0.01' },
      rounds: { type: 'string', default: '5' },
      'in-flight': { type: 'string', default: '2' },
      stage: { type: 'string', default: 'read' },
    },
  });
  const shards = positiveInt(values.shards, '--shards');
  const rounds = positiveInt(values.rounds, '--rounds');
  const inFlight = positiveInt(values['in-flight'], '--in-flight');
  if (!['read', 'decode'].includes(values.stage)) throw new Error(`--stage: expected read|decode, got "${values.stage}"`);
  const decoding = values.stage === 'decode';
  const cut = Number(values.cut);
  if (!(cut >= 0 && cut < 1)) throw new Error(`--cut: expected a fraction in [0, 1), got "${values.cut}"`);
  const corpus = await shardCorpus(shards);
  const clean = await serve(corpus.dir, 0, 0);
  const faulty = await serve(corpus.dir, cut, 0);
  const brace = `{${'0'.repeat(4)}..${String(shards - 1).padStart(4, '0')}}`;
  const patterns = {
    local: join(corpus.dir, `shard-${brace}.tar`),
    http: `${clean.url}/shard-${brace}.tar`,
    httpCut: `${faulty.url}/shard-${brace}.tar`,
  };
  const rates: Record<keyof typeof patterns, number[]> = { local: [], http: [], httpCut: [] };
  let retries = 0;
  let served = { cuts: 0, requests: 0 };
  try {
    for (let round = 0; round < rounds; round++) {
      for (const kind of ['local', 'http', 'httpCut'] as const) {
        const r = await readAll(patterns[kind], inFlight, decoding);
        if (kind === 'httpCut') retries += r.retries;
        rates[kind].push(r.samples / r.seconds);
        printJson({ bench: 'remote-round', round, kind, samples: r.samples, seconds: r.seconds, samplesPerSec: r.samples / r.seconds });
      }
    }
  } finally {
    await clean.stop();
    served = await faulty.stop();
  }
  const local = median(rates.local);
  printJson({
    bench: 'remote',
    shards,
    shardsInFlight: inFlight,
    stage: values.stage,
    megabytes: corpus.bytes / 1e6,
    rounds,
    localSamplesPerSec: local,
    httpSamplesPerSec: median(rates.http),
    httpCutSamplesPerSec: median(rates.httpCut),
    httpRatio: median(rates.http) / local,
    httpCutRatio: median(rates.httpCut) / local,
    cutFraction: cut,
    responsesCut: served.cuts,
    responses: served.requests,
    retries,
  });
}
