/**
 * Pure parts of the PostgreSQL store: the keyword phrases read back from the SQLite term rules (so
 * both backends search for the same words), and the filtered-search plan arithmetic.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { keywordPhrases } from '../../src/store/postgres/vector-keyword-query.js';
import {
  estimateAdmitted,
  exactFilterBound,
  FILTERED_EXACT_MAX,
  SAMPLE_ROWS,
  samplePercent,
} from '../../src/store/postgres/vector-search-plan.js';
import { toFtsMatchExpression } from '../../src/store/sqlite/vector-keyword-query.js';

describe('keywordPhrases', () => {
  it('are the SQLite terms: quoted phrases kept whole, stop words dropped, codes kept', () => {
    assert.deepEqual(keywordPhrases('the red "part SKU-4471-A" of a lamp'), ['red', 'part SKU-4471-A', 'lamp']);
    assert.deepEqual(keywordPhrases('to be or not to be'), ['to', 'be', 'or', 'not']);
    assert.deepEqual(keywordPhrases('foo" OR "bar'), ['foo', 'bar']);
    assert.equal(keywordPhrases(''), null);
    assert.equal(keywordPhrases(' ( ) * " - '), null);
  });

  it('round-trip the FTS5 expression for any input: quoting each phrase again gives it back', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), (q) => {
        const phrases = keywordPhrases(q);
        const expression = toFtsMatchExpression(q);
        if (phrases === null) return expression === null;
        return phrases.every((p) => !p.includes('"')) && phrases.map((p) => `"${p}"`).join(' OR ') === expression;
      }),
      { numRuns: 500 },
    );
  });
});

describe('filtered search plan arithmetic', () => {
  it('samples about SAMPLE_ROWS rows, all of a small table', () => {
    assert.equal(samplePercent(0), 100);
    assert.equal(samplePercent(SAMPLE_ROWS), 100);
    assert.equal(samplePercent(1_000_000), (100 * SAMPLE_ROWS) / 1_000_000);
  });

  it('scales the sample to the table, and knows nothing from an empty sample', () => {
    assert.equal(estimateAdmitted(3000, 30, 1_000_000), 10_000);
    assert.equal(estimateAdmitted(0, 0, 1_000_000), null);
  });

  it('lets an equality the GIN index serves be answered exactly up to a higher bound', () => {
    assert.equal(exactFilterBound(FILTERED_EXACT_MAX, false), FILTERED_EXACT_MAX);
    assert.ok(exactFilterBound(FILTERED_EXACT_MAX, true) > FILTERED_EXACT_MAX);
    assert.equal(exactFilterBound(0, true), 0);
  });
});
