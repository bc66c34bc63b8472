/**
 * Turning raw scores into `relevance` in [0, 1] (higher is better), and hybrid fusion.
 * Pure; the constants are documented in docs/api.md.
 */
import type { SearchHit } from '../store/vector-port.js';

/** Cosine similarity of normalised vectors; negatives (opposite meaning) clamp to 0. */
export const semanticRelevance = (cosine: number): number => Math.min(1, Math.max(0, cosine));

/**
 * BM25 is unbounded; s / (s + K) maps it into [0, 1) monotonically, so ranking is kept and a
 * fixed `min_relevance` means the same across queries. K = 5 puts a typical single strong term
 * match near 0.5 above the common-term band below.
 */
export const BM25_HALF = 5;

/**
 * Hits that matched only common terms sit below this relevance; every hit with a rarer term sits
 * above it. Why a band: BM25's IDF is ln((N - n + 0.5) / (n + 0.5)), zero or negative for a term
 * in half the chunks or more, and FTS5 (and the PostgreSQL adapter, which copies it) floors it at
 * 1e-6. In a small knowledge base every word is such a term, so an exact match scored ~1e-6 and
 * showed relevance 0. Every keyword hit holds a query term, so none is irrelevant.
 */
export const COMMON_TERMS_BAND = 0.25;
/** FTS5's IDF floor. */
const IDF_FLOOR = 1e-6;
/**
 * Below this score only floored terms matched: at most 32 terms (vector-keyword-query.ts) of
 * IDF_FLOOR x a term-frequency factor under k1 + 1 = 2.2 make 7e-5, while a term in fewer than
 * half of the chunks has an IDF of at least ~2/N, above 1e-4 for N up to 20,000 chunks.
 */
const COMMON_TERMS_SCORE = 1e-4;

/**
 * Keyword relevance, monotone in the BM25 score (so the ranking is BM25's): a hit of common terms
 * only gets a share of COMMON_TERMS_BAND that grows with how often they occur (score / floor is
 * the summed term-frequency factor, ~1 per occurrence); any other hit gets the band plus the rest
 * by s / (s + K).
 */
export function keywordRelevance(bm25: number): number {
  if (!(bm25 > 0)) return 0;
  if (bm25 < COMMON_TERMS_SCORE) {
    const occurrences = bm25 / IDF_FLOOR;
    return (COMMON_TERMS_BAND * occurrences) / (occurrences + 1);
  }
  return COMMON_TERMS_BAND + (1 - COMMON_TERMS_BAND) * (bm25 / (bm25 + BM25_HALF));
}

/** The BM25 score a keyword relevance came from (its inverse; bench/search-quality.ts re-maps with it). */
export function bm25OfKeywordRelevance(relevance: number): number {
  if (relevance <= 0) return 0;
  if (relevance >= 1) return Number.MAX_VALUE;
  if (relevance < COMMON_TERMS_BAND) {
    const share = relevance / COMMON_TERMS_BAND;
    return (share / (1 - share)) * IDF_FLOOR;
  }
  const mapped = (relevance - COMMON_TERMS_BAND) / (1 - COMMON_TERMS_BAND);
  return (BM25_HALF * mapped) / (1 - mapped);
}

/** Reciprocal-rank fusion constant (Cormack et al. 2009). */
export const RRF_K = 60;

/**
 * Hybrid: reciprocal-rank fusion of the semantic and keyword lists by chunk, scaled so a chunk
 * ranked first in both lists has relevance 1. Sorted best first.
 *
 * Equal fused scores go to the better keyword rank (a chunk absent from the keyword list ranks
 * last). The common tie is a chunk found by one list only at rank r against another found by the
 * other list only at rank r; the keyword hit holds the query's words or code, while the semantic
 * list returns its nearest chunks whether or not anything relevant exists. In a large knowledge
 * base that is what an exact product code looks like: first in the keyword list, absent from the
 * semantic one, tied with the semantic list's first chunk. (Breaking the tie by the higher
 * relevance instead compares cosine with a BM25 mapping, and measured worse: bench/search-quality.ts.)
 */
export function fuse(
  semantic: SearchHit[],
  keyword: SearchHit[],
): Array<{ hit: SearchHit; relevance: number }> {
  const fused = new Map<string, { hit: SearchHit; score: number; keywordRank: number }>();
  for (const [list, isKeyword] of [
    [semantic, false],
    [keyword, true],
  ] as const) {
    list.forEach((hit, rank) => {
      const entry = fused.get(hit.chunkId) ?? { hit, score: 0, keywordRank: keyword.length };
      entry.score += 1 / (RRF_K + rank + 1);
      if (isKeyword) entry.keywordRank = rank;
      fused.set(hit.chunkId, entry);
    });
  }
  const best = 2 / (RRF_K + 1);
  // Array.prototype.sort is stable: chunks tied on both keep the semantic list's order.
  return [...fused.values()]
    .sort((a, b) => b.score - a.score || a.keywordRank - b.keywordRank)
    .map(({ hit, score }) => ({ hit, relevance: Math.min(1, score / best) }));
}
