import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { checkWindow, MAX_WINDOW_MS, placeOnGrid } from '../../src/core/job-rules.js';
import { allTicks, firstTickAfter, firstTickAtOrAfter, lastTickAtOrBefore } from '../../src/core/schedule.js';
import { formatTime, parseIsoTime } from '../../src/core/time.js';
import type { Problem } from '../../src/core/errors.js';

describe('parseIsoTime', () => {
  it('treats a time without offset as UTC', () => {
    assert.equal(parseIsoTime('2025-06-19T18:00:00'), Date.UTC(2025, 5, 19, 18));
  });
  it('converts offsets', () => {
    assert.equal(parseIsoTime('2025-06-19T20:00:00+02:00'), Date.UTC(2025, 5, 19, 18));
    assert.equal(parseIsoTime('2025-06-19T13:30:00-0430'), Date.UTC(2025, 5, 19, 18));
    assert.equal(parseIsoTime('2025-06-19T18:00:00Z'), Date.UTC(2025, 5, 19, 18));
  });
  it('accepts dates, minutes-only and fractions', () => {
    assert.equal(parseIsoTime('2025-06-19'), Date.UTC(2025, 5, 19));
    assert.equal(parseIsoTime('2025-06-19T18:00'), Date.UTC(2025, 5, 19, 18));
    assert.equal(parseIsoTime('2025-06-19 18:00:00.250'), Date.UTC(2025, 5, 19, 18, 0, 0, 250));
  });
  it('rejects impossible or foreign formats', () => {
    for (const bad of ['2025-02-30T00:00:00', '2025-13-01', '19/06/2025', '2025-06-19T24:00:00', 'tomorrow', '', '2025-06-19T18:00:00+25:00']) {
      assert.equal(parseIsoTime(bad), null, bad);
    }
  });
  it('formats UTC with Z at second precision', () => {
    assert.equal(formatTime(Date.UTC(2025, 5, 19, 18, 0, 0, 999)), '2025-06-19T18:00:00Z');
  });
});

describe('tick grid', () => {
  const grid = { startMs: 1_000_000, endMs: 1_000_000 + 60 * 60_000, intervalMs: 10 * 60_000 };

  it('an hour at 10 minutes has 7 ticks', () => {
    assert.equal(allTicks(grid).length, 7);
  });
  it('before the start, the next tick is the start', () => {
    assert.equal(firstTickAtOrAfter(grid, 0), grid.startMs);
  });
  it('after the end there is none', () => {
    assert.equal(firstTickAfter(grid, grid.endMs), null);
    assert.equal(lastTickAtOrBefore(grid, grid.endMs + 999_999), grid.endMs);
  });
  it('property: the next tick is on the grid, after t, and no tick lies between', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000_000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: -20_000_000_000, max: 20_000_000_000 }),
        (start, intervalMin, ticks, offset) => {
          const g = { startMs: start, endMs: start + ticks * intervalMin * 60_000, intervalMs: intervalMin * 60_000 };
          const t = start + offset;
          const next = firstTickAtOrAfter(g, t);
          if (next === null) {
            assert.ok(t > g.endMs);
            return;
          }
          assert.equal((next - g.startMs) % g.intervalMs, 0);
          assert.ok(next >= t && next >= g.startMs && next <= g.endMs);
          assert.ok(next - g.intervalMs < t || next === g.startMs);
        },
      ),
    );
  });
});

describe('job rules', () => {
  it('window: end after start, at most 30 days', () => {
    const problems: Problem[] = [];
    checkWindow(10, 10, problems);
    checkWindow(0, MAX_WINDOW_MS + 1, problems);
    checkWindow(0, MAX_WINDOW_MS, problems);
    assert.equal(problems.length, 2);
    assert.ok(problems.every((p) => p.code === 'INVALID_DATETIME'));
  });
  it('placement: future start is scheduled at the start; an ended window is completed', () => {
    const grid = { startMs: 1000, endMs: 1000 + 3_600_000, intervalMs: 600_000 };
    assert.deepEqual(placeOnGrid(grid, 0), { status: 'scheduled', nextRunMs: 1000, warning: null });
    const done = placeOnGrid(grid, grid.endMs + 1);
    assert.equal(done.status, 'completed');
    assert.equal(done.nextRunMs, null);
    assert.match(done.warning ?? '', /never run/);
  });
});
