/**
 * Keyword relevance (kb/relevance.ts): in [0, 1], monotone in the BM25 score (so keyword results
 * keep BM25's order), and above 0 for a hit whose terms are all common, which BM25 scores at
 * FTS5's IDF floor of 1e-6 per occurrence (an exact match in a small knowledge base).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bm25OfKeywordRelevance, COMMON_TERMS_BAND, keywordRelevance } from '../../src/kb/relevance.js';

/** As the engine rounds relevance in answers. */
const shown = (r: number) => Math.round(r * 1e6) / 1e6;

describe('keywordRelevance', () => {
  it('a match of common terms only is above 0 as shown, and below every match with a rarer term', () => {
    for (const occurrences of [1, 3, 10]) {
      const r = keywordRelevance(occurrences * 1e-6);
      assert.ok(shown(r) >= 0.1, `${occurrences} occurrence(s): ${r}`);
      assert.ok(r < COMMON_TERMS_BAND);
    }
    // A term in a bit less than half of 10,000 chunks: IDF ln(5000.5 / 4999.5) = 2e-4.
    assert.ok(keywordRelevance(2e-4) >= COMMON_TERMS_BAND);
    // A typical strong single-term match.
    assert.ok(keywordRelevance(5) > 0.6 && keywordRelevance(5) < 0.7);
  });

  it('is 0 without a match, in [0, 1), and strictly monotone in the score', () => {
    assert.equal(keywordRelevance(0), 0);
    assert.equal(keywordRelevance(-1), 0);
    assert.equal(keywordRelevance(Number.NaN), 0);
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        (a, b) => {
          const [lo, hi] = a < b ? [a, b] : [b, a];
          const rl = keywordRelevance(lo);
          const rh = keywordRelevance(hi);
          assert.ok(rl >= 0 && rh < 1);
          if (lo < hi) assert.ok(rl <= rh, `${lo} → ${rl}, ${hi} → ${rh}`);
        },
      ),
    );
    // Across the boundary of the common-terms band, sampled finely.
    let previous = 0;
    for (let s = 1e-7; s < 1e-3; s *= 1.01) {
      const r = keywordRelevance(s);
      assert.ok(r > previous, `${s}`);
      previous = r;
    }
  });

  it('bm25OfKeywordRelevance is its inverse', () => {
    for (const s of [1e-6, 3e-6, 5e-5, 2e-4, 0.5, 5, 40]) {
      const back = bm25OfKeywordRelevance(keywordRelevance(s));
      assert.ok(Math.abs(back - s) / s < 1e-9, `${s} → ${back}`);
    }
  });
});
