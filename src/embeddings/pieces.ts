/**
 * "A text over the per-input limit is chunked, never rejected whole" (SEMANTICS.md, Write), for
 * every adapter: texts are exploded into pieces that fit, the pieces embedded like any other
 * input, and each text's piece vectors folded back into one by a length-weighted mean.
 */
import { splitText } from '../core/chunking.js';
import { combinePieces } from './vectors.js';

export interface Exploded {
  /** What to send to the model. */
  pieces: string[];
  /** For each piece, the index of the text it came from. */
  owners: number[];
  /** For each piece, its weight in the mean (its length). */
  weights: number[];
}

/**
 * `fits(text)` says whether a text can be sent whole; `cut(text)` gives pieces that each fit
 * (the caller guarantees that, e.g. by re-cutting a piece that still does not).
 */
export function explode(
  texts: string[],
  fits: (text: string) => boolean,
  cut: (text: string) => string[],
): Exploded {
  const out: Exploded = { pieces: [], owners: [], weights: [] };
  texts.forEach((text, owner) => {
    // Blank texts still get a vector, and all the same one: remote APIs reject an empty input
    // and the local model fails on one, so they are sent as a single space.
    const parts = text.trim() === '' ? [' '] : fits(text) ? [text] : cut(text);
    for (const p of parts) {
      out.pieces.push(p);
      out.owners.push(owner);
      out.weights.push(Math.max(1, p.length));
    }
  });
  return out;
}

/** Folds piece vectors back into one vector per original text, in order. */
export function implode(count: number, exploded: Exploded, vectors: Float32Array[]): Float32Array[] {
  // Nothing was cut: pieces are the texts themselves.
  if (vectors.length === count) return vectors;
  const groups: { vectors: Float32Array[]; weights: number[] }[] = Array.from({ length: count }, () => ({
    vectors: [],
    weights: [],
  }));
  exploded.owners.forEach((owner, k) => {
    groups[owner]!.vectors.push(vectors[k]!);
    groups[owner]!.weights.push(exploded.weights[k]!);
  });
  return groups.map((g) => combinePieces(g.vectors, g.weights));
}

/** Cuts a text into pieces of at most `maxChars` characters on natural boundaries, no overlap. */
export function cutByChars(text: string, maxChars: number): string[] {
  return splitText(text, { chunkSize: maxChars, chunkOverlap: 0 }).map((c) => c.text);
}
