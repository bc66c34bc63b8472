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
 * ranked first in both lists has relevance 1.
 */
export function fuse(semantic: SearchHit[], keyword: SearchHit[]): Array<{ hit: SearchHit; relevance: number }> {
  const fused = new Map<string, { hit: SearchHit; score: number }>();
  for (const list of [semantic, keyword]) {
    list.forEach((hit, rank) => {
      const entry = fused.get(hit.chunkId) ?? { hit, score: 0 };
      entry.score += 1 / (RRF_K + rank + 1);
      fused.set(hit.chunkId, entry);
    });
  }
  const best = 2 / (RRF_K + 1);
  return [...fused.values()].map(({ hit, score }) => ({ hit, relevance: Math.min(1, score / best) }));
}
