import { describe, expect, it } from 'vitest';
import { ReclusterSchedule } from '../positives/recluster-schedule.js';

describe('ReclusterSchedule', () => {
  // every 4 steps, lag ⌊4/2⌋ = 2, 8 anchors a batch, 20 steps
  const schedule = new ReclusterSchedule({ every: 4, anchorsPerStep: 8, steps: 20 });

  it('serves batch b with the round of the latest snapshot at least lag steps before it', () => {
    expect(schedule.lag).toBe(2);
    // round r snapshots after step 4r and serves batches (0-based) 4r + 2 … 4r + 5
    expect([0, 5, 6, 9, 10, 19].map((b) => schedule.roundOf(b))).toEqual([-1, 0, 1, 1, 2, 4]);
    expect(schedule.firstServed(4)).toBe(6);
    expect(schedule.batchOf(0)).toBe(0);
    expect(schedule.batchOf(7)).toBe(0);
    expect(schedule.batchOf(8)).toBe(1);
  });

  it('starts a round after every 4th step, never at or after the last step', () => {
    expect([3, 4, 8, 16, 19, 20].map((done) => schedule.roundStartingAfter(done))).toEqual([undefined, 1, 2, 4, undefined, undefined]);
    // the last round is the one started before the last step: batch 1000 would still be served by round 4
    expect(schedule.roundOf(1000)).toBe(4);
  });

  it('after a resume, starts no round at the resumed step, and knows which rounds came before it', () => {
    const resumed = new ReclusterSchedule({ every: 4, anchorsPerStep: 8, steps: 20, startStep: 8 });
    expect(resumed.roundStartingAfter(8)).toBeUndefined();
    expect(resumed.roundStartingAfter(12)).toBe(3);
    expect([1, 2, 3].map((r) => resumed.beforeStart(r))).toEqual([true, true, false]);
  });

  it('refuses a lag outside 1 … every and steps that are not positive integers', () => {
    expect(() => new ReclusterSchedule({ every: 4, anchorsPerStep: 8, steps: 20, lag: 5 })).toThrow(
      'Reclustering lag: expected an integer in [1, every = 4], got 5',
    );
    expect(() => new ReclusterSchedule({ every: 0, anchorsPerStep: 8, steps: 20 })).toThrow(
      'Reclustering every: expected an integer ≥ 1, got 0',
    );
    expect(() => new ReclusterSchedule({ every: 4, anchorsPerStep: 8, steps: 2.5 })).toThrow('Reclustering steps');
  });
});
