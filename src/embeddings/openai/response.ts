/**
 * Reading an answer of `POST /embeddings` (the protocol side of the OpenAI-compatible adapter;
 * provider.ts keeps batching, retries and timeouts): the vectors by `index`, the model that
 * answered, and what the server billed (`usage`).
 */
import { normalizeInPlace } from '../vectors.js';

export interface ParsedEmbeddings {
  /** One L2-normalised vector per input, in input order. */
  vectors: Float32Array[];
  model?: string;
  /**
   * Tokens the server says the request cost: `usage.total_tokens`, else `usage.prompt_tokens`
   * (the same number for embeddings); undefined when it does not say (some compatible servers).
   */
  usageTokens?: number;
}

/**
 * `expectedDims`: the vector length configured (`requested`) or learned from an earlier answer.
 * Answers `{ invalid: why }` for a body that is not a well-formed answer to `expected` inputs.
 */
export function parseEmbeddingsResponse(
  body: string,
  expected: number,
  expectedDims: { dims: number; requested: boolean } | undefined,
): ParsedEmbeddings | { invalid: string } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { invalid: 'not JSON' };
  }
  const { data, model, usage } = (json ?? {}) as { data?: unknown; model?: unknown; usage?: unknown };
  if (!Array.isArray(data)) return { invalid: 'no "data" array' };
  if (data.length !== expected) return { invalid: `${data.length} embeddings for ${expected} inputs` };
  const out: Float32Array[] = new Array(expected);
  for (const item of data as { index?: unknown; embedding?: unknown }[]) {
    const index = item?.index;
    if (
      typeof index !== 'number' ||
      !Number.isInteger(index) ||
      index < 0 ||
      index >= expected ||
      out[index]
    ) {
      return { invalid: `bad or duplicate index ${JSON.stringify(index)}` };
    }
    const v = toVector(item.embedding);
    if (!v) return { invalid: `embedding ${index} is not a list of numbers` };
    out[index] = normalizeInPlace(v);
  }
  const dims = out[0]!.length;
  if (dims === 0 || out.some((v) => v.length !== dims)) return { invalid: 'embeddings of different lengths' };
  if (expectedDims !== undefined && dims !== expectedDims.dims) {
    return {
      invalid: expectedDims.requested
        ? `${dims}-dimensional vectors, but dimensions=${expectedDims.dims} was configured (does the model support it?)`
        : `${dims}-dimensional vectors, earlier responses had ${expectedDims.dims}`,
    };
  }
  const tokens = usageTokens(usage);
  return {
    vectors: out,
    ...(typeof model === 'string' ? { model } : {}),
    ...(tokens !== undefined ? { usageTokens: tokens } : {}),
  };
}

/** `usage.total_tokens`, else `usage.prompt_tokens`, when it is a whole number ≥ 0. */
function usageTokens(usage: unknown): number | undefined {
  if (usage === null || typeof usage !== 'object') return undefined;
  const { total_tokens: total, prompt_tokens: prompt } = usage as {
    total_tokens?: unknown;
    prompt_tokens?: unknown;
  };
  for (const n of [total, prompt]) {
    if (typeof n === 'number' && Number.isInteger(n) && n >= 0) return n;
  }
  return undefined;
}

function toVector(e: unknown): Float32Array | undefined {
  if (Array.isArray(e)) {
    const v = new Float32Array(e.length);
    for (let i = 0; i < e.length; i++) {
      const x = e[i];
      if (typeof x !== 'number' || !Number.isFinite(x)) return undefined;
      v[i] = x;
    }
    return v;
  }
  // base64 of little-endian float32s, what `encoding_format: "base64"` returns.
  if (typeof e === 'string') {
    const bytes = Buffer.from(e, 'base64');
    if (bytes.length % 4 !== 0) return undefined;
    const v = new Float32Array(bytes.length / 4);
    for (let i = 0; i < v.length; i++) v[i] = bytes.readFloatLE(i * 4);
    return v.every(Number.isFinite) ? v : undefined;
  }
  return undefined;
}
