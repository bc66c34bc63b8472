/** The progress arithmetic of a running run (src/core/progress.ts): percent, ETA, the smoothed rate. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { observeThroughput, runProgress, startThroughput, type Throughput } from '../../src/core/progress.js';

/** Samples `rows` at each time (ms) in turn, from a start at 0 ms and 0 rows. */
function sampled(samples: Array<[number, number]>, halfLifeMs?: number): Throughput {
  let t = startThroughput(0);
  for (const [ms, rows] of samples) t = observeThroughput(t, ms, rows, halfLifeMs);
  return t;
}

describe('runProgress', () => {
  it('percent and ETA from rows done, the estimate and the rate', () => {
    assert.deepEqual(runProgress(750, 3000, 250), { rowsDone: 750, rowsTotalEstimate: 3000, percent: 25, etaSeconds: 9 });
    // One decimal each.
    assert.deepEqual(runProgress(1, 3, 7), { rowsDone: 1, rowsTotalEstimate: 3, percent: 33.3, etaSeconds: 0.3 });
  });

  it('no ETA until there is a rate; no percent or ETA without an estimate', () => {
    assert.deepEqual(runProgress(0, 3000, null), { rowsDone: 0, rowsTotalEstimate: 3000, percent: 0, etaSeconds: null });
    assert.deepEqual(runProgress(10, 3000, 0), { rowsDone: 10, rowsTotalEstimate: 3000, percent: 0.3, etaSeconds: null });
    assert.deepEqual(runProgress(40, null, 12), { rowsDone: 40, rowsTotalEstimate: null, percent: null, etaSeconds: null });
    assert.deepEqual(runProgress(40, Number.NaN, 12), { rowsDone: 40, rowsTotalEstimate: null, percent: null, etaSeconds: null });
  });

  it('rows done reaching the estimate: 100% and no time left', () => {
    assert.deepEqual(runProgress(3000, 3000, 100), { rowsDone: 3000, rowsTotalEstimate: 3000, percent: 100, etaSeconds: 0 });
    // An empty estimate (nothing to read past the watermark) is done from the start.
    assert.deepEqual(runProgress(0, 0, null), { rowsDone: 0, rowsTotalEstimate: 0, percent: 100, etaSeconds: 0 });
  });

  it('rows done past the estimate: the total becomes unknown, never above 100%', () => {
    const p = runProgress(3001, 3000, 100);
    assert.deepEqual(p, { rowsDone: 3001, rowsTotalEstimate: null, percent: null, etaSeconds: null });
  });

  it('percent stays within 0..100 and rows done are whole and never negative', () => {
    for (const [done, total] of [
      [-5, 10],
      [0, 1],
      [0.4, 1],
      [999_999, 1_000_000],
      [1e9, 1e9],
    ] as const) {
      const p = runProgress(done, total, 1);
      assert.ok(p.percent !== null && p.percent >= 0 && p.percent <= 100, JSON.stringify(p));
      assert.ok(Number.isInteger(p.rowsDone) && p.rowsDone >= 0, JSON.stringify(p));
    }
    // 999,999 of a million is not shown as done.
    assert.equal(runProgress(999_999, 1_000_000, 1).percent, 99.9);
    assert.ok(runProgress(999_999, 1_000_000, 1).etaSeconds! > 0);
  });
});

describe('throughput', () => {
  it('has no rate until rows move, then the average since the start', () => {
    let t = startThroughput(1_000);
    t = observeThroughput(t, 2_000, 0);
    assert.equal(t.rowsPerSecond, null);
    t = observeThroughput(t, 3_000, 200);
    assert.equal(t.rowsPerSecond, 100, '200 rows in 2 s');
  });

  it('ignores a sample without time passing (no division by zero)', () => {
    const t = sampled([[1_000, 100]]);
    assert.equal(observeThroughput(t, 1_000, 500), t);
    assert.equal(observeThroughput(t, 900, 500), t);
  });

  it('a steady run keeps its rate, and the ETA falls as rows are done', () => {
    const samples: Array<[number, number]> = Array.from({ length: 20 }, (_, i) => [(i + 1) * 1_000, (i + 1) * 150]);
    let t = startThroughput(0);
    let previousEta = Number.POSITIVE_INFINITY;
    for (const [ms, rows] of samples) {
      t = observeThroughput(t, ms, rows);
      assert.ok(Math.abs(t.rowsPerSecond! - 150) < 1e-9, `rate ${t.rowsPerSecond}`);
      const eta = runProgress(rows, 3000, t.rowsPerSecond).etaSeconds!;
      assert.ok(eta < previousEta, `ETA ${eta} after ${previousEta}`);
      previousEta = eta;
    }
    assert.equal(previousEta, 0);
  });

  it('follows a run that slows down, gradually: half the way in one half-life', () => {
    // 100 rows/s for 10 s, then 10 s at 0 rows/s, sampled every second.
    const fast: Array<[number, number]> = Array.from({ length: 10 }, (_, i) => [(i + 1) * 1_000, (i + 1) * 100]);
    const stalled: Array<[number, number]> = Array.from({ length: 10 }, (_, i) => [11_000 + i * 1_000, 1_000]);
    const t = sampled([...fast, ...stalled], 10_000);
    assert.ok(Math.abs(t.rowsPerSecond! - 50) < 1e-6, `after one half-life at 0 rows/s: ${t.rowsPerSecond}`);
    // One stalled second moves it only a little (about 7%), so one slow batch does not make the ETA jump.
    const oneSecond = sampled([...fast, [11_000, 1_000]], 10_000);
    assert.ok(oneSecond.rowsPerSecond! > 90 && oneSecond.rowsPerSecond! < 100, `${oneSecond.rowsPerSecond}`);
  });

  it('rows going back (never expected) count as no progress, not as a negative rate', () => {
    const t = sampled([
      [1_000, 100],
      [2_000, 50],
    ]);
    assert.ok(t.rowsPerSecond! >= 0 && t.rowsPerSecond! < 100);
  });
});
