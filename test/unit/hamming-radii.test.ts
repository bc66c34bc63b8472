/**
 * The bounds a Hamming scan tries in turn (store/sqlite/vector-search-plan.ts, HammingRadii): the
 * upper quartile of the collection's recent radii, then the largest, then none.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HammingRadii } from '../../src/store/sqlite/vector-search-plan.js';

describe('HammingRadii', () => {
  it('tries no bound until four searches were seen', () => {
    const radii = new HammingRadii();
    for (const r of [100, 120, 140]) radii.record(1, 100, r);
    assert.deepEqual(radii.bounds(1, 100), []);
    radii.record(1, 100, 110);
    assert.deepEqual(radii.bounds(1, 100), [120, 140]);
  });

  it('the upper quartile first, then the largest of the last 16; one bound when they are equal', () => {
    const radii = new HammingRadii();
    // 20 searches: only the last 16 count (radii 105..120), so 101..104 are forgotten.
    for (let r = 101; r <= 120; r++) radii.record(7, 100, r);
    assert.deepEqual(radii.bounds(7, 100), [116, 120]);
    const same = new HammingRadii();
    for (let i = 0; i < 8; i++) same.record(7, 100, 130);
    assert.deepEqual(same.bounds(7, 100), [130]);
  });

  it('keeps collections and candidate counts apart, and forgets a collection', () => {
    const radii = new HammingRadii();
    for (let i = 0; i < 4; i++) {
      radii.record(1, 100, 100 + i);
      radii.record(1, 400, 150 + i);
      radii.record(2, 100, 90 + i);
    }
    assert.deepEqual(radii.bounds(1, 100), [102, 103]);
    assert.deepEqual(radii.bounds(1, 400), [152, 153]);
    radii.forget(1);
    assert.deepEqual(radii.bounds(1, 100), []);
    assert.deepEqual(radii.bounds(2, 100), [92, 93]);
  });
});
