/**
 * Money and runs from token counts (API.md, "Cost and freshness"). Pure.
 *
 * A knowledge base may carry `embedding.price_per_million_tokens`; a cost is then tokens × price
 * / 1,000,000 in the price's own currency, and null when no price is set (never a guessed one).
 */

/** Decimal places a cost keeps: a millionth of a cent at most, without float noise (0.30000000000000004). */
const COST_DECIMALS = 8;

export function embeddingCost(
  tokens: number,
  pricePerMillionTokens: number | null | undefined,
): number | null {
  if (pricePerMillionTokens === null || pricePerMillionTokens === undefined) return null;
  const scale = 10 ** COST_DECIMALS;
  return Math.round(((tokens * pricePerMillionTokens) / 1_000_000) * scale) / scale;
}

/**
 * Runs needed to embed `tokens` when each run stops at `maxTokensPerRun` (null: one run). An
 * approximation: a run stops at a row boundary, so it may take a little less than its budget.
 */
export function runsForTokens(tokens: number, maxTokensPerRun: number | null | undefined): number {
  if (tokens <= 0) return 0;
  if (maxTokensPerRun === null || maxTokensPerRun === undefined) return 1;
  return Math.ceil(tokens / maxTokensPerRun);
}
