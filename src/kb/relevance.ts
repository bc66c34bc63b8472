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
 * match near 0.5.
 */
export const BM25_HALF = 5;
export const keywordRelevance = (bm25: number): number => (bm25 <= 0 ? 0 : bm25 / (bm25 + BM25_HALF));

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
