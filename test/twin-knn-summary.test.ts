import { describe, expect, it } from 'vitest';
import { parseSeeds, parseSides, summariseTwinKnn, type TwinKnnLine, type TwinKnnSide } from '../bench/twin-knn.js';

/** `x`, failing the test where it is missing. */
const need = <T>(x: T | undefined): T => {
  expect(x).toBeDefined();
  return x as T;
};

const side = (knnInit: number, knnFinal: number, images = 1280): TwinKnnSide => ({
  steps: images / 128,
  images,
  knnInit,
  knnFinal,
  gain: knnFinal - knnInit,
  gainStdErr: 0.006,
});

/** A seed where densestream and the same-init twin start together (the twin ending at `sameFinal`), and the other two twins start lower. */
const line = (seed: number, ours: [number, number], reference: [number, number], sameFinal: number): TwinKnnLine => ({
  bench: 'twin-knn',
  seed,
  resample: 'centres',
  init: 'densestream',
  seconds: 60,
  test: 10000,
  densestream: side(...ours),
  torch: side(0.65, 0.75, 1024),
  torchReferenceInit: { ...side(...reference, 1152), seconds: 55 },
  torchSameInit: side(ours[0], sameFinal),
});

describe('twin-knn over several seeds', () => {
  it('reads one seed, a range or a list, and refuses anything else before any run', () => {
    expect(parseSeeds('3')).toEqual([3]);
    expect(parseSeeds('0-4')).toEqual([0, 1, 2, 3, 4]);
    expect(parseSeeds('0, 2,7')).toEqual([0, 2, 7]);
    for (const bad of ['', '-1', '1.5', 'a', '4-2', '1,,2', '0-', '99999999999999999999'])
      expect(() => parseSeeds(bad), bad).toThrow(/--seed: expected an integer ≥ 0, a range A-B or a list/);
    expect(() => parseSeeds('1,1')).toThrow(/names a seed twice/);
    expect(parseSeeds('0-99')).toHaveLength(100);
    expect(() => parseSeeds('0-999999999')).toThrow(/names 1000000000 seeds, more than 100/);
  });

  it('pairs densestream with each twin side seed by seed', () => {
    const lines = [
      line(0, [0.74, 0.76], [0.72, 0.77], 0.762),
      line(1, [0.72, 0.76], [0.71, 0.76], 0.759),
      line(2, [0.73, 0.75], [0.7, 0.75], 0.751),
      line(3, [0.72, 0.75], [0.7, 0.74], 0.75),
    ];
    const s = summariseTwinKnn(lines);
    expect(s.seeds).toEqual([0, 1, 2, 3]);
    expect([s.steps, s.test, s.resample]).toEqual([10, 10000, 'centres']);
    // densestream's gains 0.02, 0.04, 0.02, 0.03: mean 0.0275; the reference twin's 0.05, 0.05, 0.05, 0.04
    expect(s.sides.densestream.gain.mean).toBeCloseTo(0.0275, 12);
    const reference = need(s.sides.torchReferenceInit);
    expect(reference.knnInit.mean).toBeCloseTo(0.7075, 12);
    expect(reference.images).toBe(1152);
    expect(reference.seconds).toBe(55);
    expect(s.sides.densestream.seconds).toBe(60); // densestream's side takes the line's seconds
    // gain differences −0.03, −0.01, −0.03, −0.01: mean −0.02, sd 0.011547, se 0.005774; t(3)·se = 3.182 · 0.005774 = 0.0184
    const gap = need(s.gainOver.torchReferenceInit);
    expect(gap.mean).toBeCloseTo(-0.02, 12);
    expect(gap.se).toBeCloseTo(0.011547005 / 2, 8);
    expect(gap.verdict).toBe('**no**');
    // final differences −0.01, 0, 0, 0.01: within noise
    expect(need(s.finalOver.torchReferenceInit).mean).toBeCloseTo(0, 12);
    expect(need(s.finalOver.torchReferenceInit).verdict).toBe('within noise');
    // the same-init twin: final differences −0.002, +0.001, −0.001, 0: mean −0.0005, within noise
    expect(need(s.finalOver.torchSameInit).mean).toBeCloseTo(-0.0005, 12);
    expect(need(s.gainOver.torchSameInit).verdict).toBe('within noise');
  });

  it('sums up only the twin sides a run trained (--sides), and refuses seeds that differ in them', () => {
    expect(parseSides('torchSameInit, torchReferenceInit')).toEqual(['torchReferenceInit', 'torchSameInit']);
    expect(parseSides('torchSameInitSeconds,torch')).toEqual(['torch', 'torchSameInitSeconds']);
    for (const bad of ['', 'torch,', 'reference', 'torch;torchSameInit'])
      expect(() => parseSides(bad), bad).toThrow(
        /--sides: expected a list of torch\|torchReferenceInit\|torchSameInit\|torchSameInitSeconds,/,
      );
    expect(() => parseSides('torch,torch')).toThrow(/names a side twice/);
    const only = ({ torch: _t, torchSameInit: _s, ...rest }: TwinKnnLine): TwinKnnLine => rest;
    const lines = [line(0, [0.74, 0.76], [0.72, 0.77], 0.762), line(1, [0.72, 0.76], [0.71, 0.76], 0.759)].map(only);
    const s = summariseTwinKnn(lines);
    expect(Object.keys(s.sides)).toEqual(['densestream', 'torchReferenceInit']);
    expect(Object.keys(s.gainOver)).toEqual(['torchReferenceInit']);
    // gains 0.02 and 0.04 against 0.05 and 0.05: differences −0.03 and −0.01
    expect(need(s.gainOver.torchReferenceInit).mean).toBeCloseTo(-0.02, 12);
    const mixed = [line(5, [0.74, 0.76], [0.72, 0.77], 0.762), ...lines];
    expect(() => summariseTwinKnn(mixed)).toThrow('seed 0 has sides [torchReferenceInit], seed 5 [torch,torchReferenceInit,torchSameInit]');
  });

  it("records densestream's draw, and refuses seeds drawn two ways", () => {
    const reference = [0, 1].map((seed): TwinKnnLine => ({ ...line(seed, [0.73, 0.76], [0.72, 0.77], 0.76), init: 'reference' }));
    expect(summariseTwinKnn(reference).init).toBe('reference');
    expect(() => summariseTwinKnn([...reference, line(2, [0.73, 0.76], [0.72, 0.77], 0.76)])).toThrow(
      'seed 2 drew --init densestream, seed 0 --init reference',
    );
  });

  it('refuses an empty run', () => {
    expect(() => summariseTwinKnn([])).toThrow(/no seeds/);
  });
});
