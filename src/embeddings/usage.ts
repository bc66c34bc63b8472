/**
 * Tokens an embedding costs, for every provider (API.md, "Cost and freshness").
 *
 * The OpenAI-compatible provider reports what the server says it billed (`usage`). The local
 * model and the hashing provider bill nothing and report nothing, so their input is counted with
 * cl100k_base, the tokenizer of OpenAI's embedding models: their figures then read in the unit a
 * price per million tokens is quoted in, and compare with what the same rows would cost on
 * OpenAI. (The local model's own SentencePiece tokenizer is quadratic in the text's length and
 * lives in the worker threads; counting with it would cost a good part of the embedding itself.)
 * Estimates and the per-run token budget count the same way, before anything is sent.
 */
import { countTokensCl100k, loadTokenizer } from './openai/tokens.js';
import type { EmbeddingProvider, EmbeddingUsage, EmbedOptions } from './port.js';

/** The tokenizer estimates and non-reporting providers count with. */
export const TOKENIZER = 'cl100k_base';

/**
 * Tokens of `texts` as they are sent: a blank text goes out as one space (embeddings/pieces.ts
 * explode), which is one token.
 */
export async function countInputTokens(texts: readonly string[]): Promise<number> {
  await loadTokenizer();
  let total = 0;
  for (const text of texts) total += countTokensCl100k(text.trim() === '' ? ' ' : text);
  return total;
}

/**
 * `provider.embed`, adding what the call cost to `usage`: what the provider reports for each of
 * its requests, or — when it reports nothing — the texts counted with the tokenizer as one request.
 * What a provider reported for requests that succeeded stays in `usage` when a later one fails
 * (those were billed).
 */
export async function meteredEmbed(
  provider: EmbeddingProvider,
  texts: string[],
  options: EmbedOptions | undefined,
  usage: EmbeddingUsage,
): Promise<Float32Array[]> {
  let reported = false;
  const vectors = await provider.embed(texts, {
    ...options,
    onUsage: (u) => {
      reported = true;
      usage.tokens += u.tokens;
      usage.requests += u.requests;
    },
  });
  if (!reported && texts.length > 0) {
    usage.tokens += await countInputTokens(texts);
    usage.requests += 1;
  }
  return vectors;
}
