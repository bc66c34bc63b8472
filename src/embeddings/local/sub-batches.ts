/**
 * How one embed call is cut into the sub-batches sent to workers. A worker cannot be interrupted
 * in the middle of a sub-batch, so its size bounds two waits: a search that finds every worker
 * busy (without a reserved worker, pool.ts), and the work a cancelled sync leaves running.
 */

export interface SubBatchLimits {
  /** Texts per sub-batch. */
  maxTexts: number;
  /**
   * Characters per sub-batch (a single longer text goes alone). The model's time grows with the
   * text's length (measured: ~0.1 ms a character on one busy core), so characters, not texts,
   * bound how long a sub-batch runs.
   */
  maxChars?: number;
}

/** Consecutive runs of `texts` within both limits, as [start, end) index pairs; every text in exactly one. */
export function cutSubBatches(texts: readonly string[], limits: SubBatchLimits): Array<[number, number]> {
  const maxChars = limits.maxChars ?? Number.POSITIVE_INFINITY;
  const out: Array<[number, number]> = [];
  let start = 0;
  let chars = 0;
  texts.forEach((text, i) => {
    const n = i - start;
    if (n > 0 && (n >= limits.maxTexts || chars + text.length > maxChars)) {
      out.push([start, i]);
      start = i;
      chars = 0;
    }
    chars += text.length;
  });
  if (start < texts.length) out.push([start, texts.length]);
  return out;
}
