import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDurationSeconds, parseInterval } from '../../src/core/interval.js';

const MIN = 60_000;

describe('parseInterval', () => {
  const good: Array<[string, number, string]> = [
    ['5 MINUTES', 5 * MIN, '5 MINUTES'],
    ['30 minutes', 30 * MIN, '30 MINUTES'],
    ['1 MINUTE', MIN, '1 MINUTE'],
    ['1 minutes', MIN, '1 MINUTE'],
    ['1 HOUR', 60 * MIN, '1 HOUR'],
    ['6 Hours', 360 * MIN, '6 HOURS'],
    ['1 DAY', 1440 * MIN, '1 DAY'],
    ['7 days', 7 * 1440 * MIN, '7 DAYS'],
    ['HOURLY', 60 * MIN, 'HOURLY'],
    ['daily', 1440 * MIN, 'DAILY'],
    ['Weekly', 7 * 1440 * MIN, 'WEEKLY'],
    ['  10   MINUTES ', 10 * MIN, '10 MINUTES'],
  ];
  for (const [text, ms, normalized] of good) {
    it(`accepts '${text}'`, () => {
      assert.deepEqual(parseInterval(text), { ok: true, ms, normalized });
    });
  }
  for (const text of ['5 SECONDS', '0 MINUTES', 'EVERY TUESDAY', '1.5 HOURS', '-1 HOUR', 'MINUTES', '10', '', '10 MINUTES AGO', '400 DAYS', '2 WEEKS']) {
    it(`rejects '${text}' with a reason naming it`, () => {
      const r = parseInterval(text);
      assert.equal(r.ok, false);
      if (!r.ok) assert.ok(r.reason.includes(`'${text}'`));
    });
  }
});

describe('parseDurationSeconds', () => {
  it('reads seconds, units and zero', () => {
    assert.equal(parseDurationSeconds(0), 0);
    assert.equal(parseDurationSeconds(90), 90);
    assert.equal(parseDurationSeconds('30 SECONDS'), 30);
    assert.equal(parseDurationSeconds('5 minutes'), 300);
    assert.equal(parseDurationSeconds('2 HOURS'), 7200);
    assert.equal(parseDurationSeconds('120'), 120);
  });
  it('refuses nonsense', () => {
    assert.equal(parseDurationSeconds(-1), null);
    assert.equal(parseDurationSeconds(1.5), null);
    assert.equal(parseDurationSeconds('soon'), null);
    assert.equal(parseDurationSeconds('400 DAYS'), null);
  });
});
