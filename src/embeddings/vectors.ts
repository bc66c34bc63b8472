/** Small vector helpers shared by the adapters. */

/** Scales `v` in place to unit length; a zero vector is left as is (there is no direction). */
export function normalizeInPlace(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  if (sum > 0) {
    const inv = 1 / Math.sqrt(sum);
    for (let i = 0; i < v.length; i++) v[i]! *= inv;
  }
  return v;
}

/**
 * Weighted mean of piece vectors, re-normalised: the embedding of a text that had to be cut into
 * pieces. Weights are piece lengths, so a short tail piece does not count as much as a full one.
 */
export function combinePieces(vectors: Float32Array[], weights: number[]): Float32Array {
  const first = vectors[0];
  if (!first) throw new Error('combinePieces needs at least one vector');
  if (vectors.length === 1) return first;
  const out = new Float32Array(first.length);
  vectors.forEach((v, k) => {
    const w = weights[k] ?? 1;
    for (let i = 0; i < out.length; i++) out[i]! += w * v[i]!;
  });
  return normalizeInPlace(out);
}

export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Throws (with the signal's own reason, as fetch does) when the caller gave up. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}
