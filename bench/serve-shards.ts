/**
 * `node dist/bench/serve-shards.js DIR [CUT] [SEED]`: serves the `.tar` files of DIR over
 * loopback HTTP from a process of its own (a real server does not share the reader's thread),
 * cutting each response with probability CUT at a random byte. Prints `{"url":…}` once it
 * listens; serves until killed.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { keyedRng } from '../core/index.js';
import { FaultServer } from './fault-server.js';

const [dir, cutArg = '0', seedArg = '0'] = process.argv.slice(2);
if (!dir) throw new Error('usage: serve-shards.js DIR [CUT] [SEED]');
const cut = Number(cutArg);
const rng = keyedRng(Number(seedArg), 'serve-shards-cuts');
const server = new FaultServer();
for (const name of readdirSync(dir).filter((n) => n.endsWith('.tar'))) server.objects.set(`/${name}`, { file: join(dir, name) });
let cuts = 0;
server.plan = (path, _n, start) => {
  if (cut === 0 || !rng.chance(cut)) return undefined;
  cuts++;
  return { kind: 'cut', after: rng.int(statSync(join(dir, path.slice(1))).size - start) };
};
const url = await server.start();
process.stdout.write(`${JSON.stringify({ url })}\n`);
process.on('SIGTERM', () => {
  process.stderr.write(`${JSON.stringify({ cuts, requests: server.log.length })}\n`);
  process.exit(0);
});
