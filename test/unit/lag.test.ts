/** core/lag.ts: filter values as times, and lag_seconds from a stored measurement. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { caughtUp, filterValueMs, lagAlertStands, lagSeconds, measureLag } from '../../src/core/lag.js';

describe('filterValueMs', () => {
  it('reads the text forms of time columns, zoneless as UTC', () => {
    assert.equal(filterValueMs('timestamptz', '2025-06-19 12:00:00.123+00'), Date.UTC(2025, 5, 19, 12, 0, 0, 123));
    assert.equal(filterValueMs('timestamptz', '2025-06-19 14:00:00+02'), Date.UTC(2025, 5, 19, 12));
    assert.equal(filterValueMs('timestamp', '2025-06-19 12:00:00.000000'), Date.UTC(2025, 5, 19, 12));
    assert.equal(filterValueMs('date', '2025-06-19'), Date.UTC(2025, 5, 19));
  });
  it('reads Unix numbers (SQLite): seconds, or milliseconds when that large', () => {
    assert.equal(filterValueMs('timestamp', '1750334400'), 1_750_334_400_000);
    assert.equal(filterValueMs('timestamp', '1750334400123'), 1_750_334_400_123);
  });
  it('is null for columns that are not times, and for text that is not a time', () => {
    assert.equal(filterValueMs('integer', '1750334400'), null);
    assert.equal(filterValueMs('text', '2025-06-19'), null);
    assert.equal(filterValueMs(undefined, '2025-06-19'), null);
    assert.equal(filterValueMs('timestamptz', 'infinity'), null);
  });
});

describe('lagSeconds', () => {
  const now = Date.UTC(2025, 5, 19, 12);
  it('is null never measured, 0 caught up, now − oldest behind (growing with now)', () => {
    assert.equal(lagSeconds(undefined, now), null);
    assert.equal(lagSeconds(caughtUp(now - 10_000), now), 0);
    const behind = measureLag('timestamp', '2025-06-19 11:00:00', now);
    assert.equal(lagSeconds(behind, now), 3600);
    assert.equal(lagSeconds(behind, now + 60_000), 3660, 'grows with time without a new measurement');
  });
  it('is null behind on a filter column that is not a time, never negative for future values', () => {
    const ids = measureLag('integer', '42', now);
    assert.deepEqual(ids, { behind: true, oldestMs: null, measuredAt: now });
    assert.equal(lagSeconds(ids, now), null);
    assert.equal(lagSeconds(measureLag('integer', null, now), now), 0);
    assert.equal(lagSeconds(measureLag('timestamp', '2025-06-19 13:00:00', now), now), 0);
  });
});

describe('lagAlertStands', () => {
  const now = Date.UTC(2025, 5, 19, 12);
  const behind = (seconds: number) => measureLag('timestamp', new Date(now - seconds * 1000).toISOString(), now);
  it('rises past the threshold, stays while past it, clears at or under it; unknown lag changes nothing', () => {
    assert.equal(lagAlertStands(600, behind(601), false, now), true);
    assert.equal(lagAlertStands(600, behind(900), true, now), true);
    assert.equal(lagAlertStands(600, behind(600), true, now), false);
    assert.equal(lagAlertStands(600, caughtUp(now), true, now), false);
    assert.equal(lagAlertStands(600, measureLag('integer', '7', now), true, now), true);
    assert.equal(lagAlertStands(600, undefined, false, now), false);
    assert.equal(lagAlertStands(null, behind(10_000), true, now), false, 'no threshold: no alert');
  });
});
