/**
 * Checks on what the vector store is given (the same rules and messages as the SQLite adapter's),
 * and the one difference PostgreSQL forces on text: it cannot store a NUL character, in `text` nor
 * in `jsonb`, and `jsonb` refuses an unpaired surrogate. SQLite stores both. So NULs and unpaired
 * surrogates in content, chunk text and metadata strings are stored as U+FFFD (the character a
 * UTF-8 decoder shows for what it cannot read), and filter values are mapped the same way so they
 * still match. A document id, which must round-trip exactly, is refused instead.
 */
import type { DocumentInput, Metadata } from '../vector-port.js';

/** The SQLite adapter's bounds, so a request valid on one backend is valid on the other. */
export const MAX_TOP_K = 4096;
export const MAX_PAGE_LIMIT = 10_000;

// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is the character PostgreSQL cannot store.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function pgText(s: string): string {
  return s.replace(UNSTORABLE, '\ufffd');
}

/** Metadata with every key and string value made storable (pgText). */
export function pgMetadata(metadata: Metadata): Metadata {
  const out: Metadata = {};
  for (const [key, value] of Object.entries(metadata))
    out[pgText(key)] = typeof value === 'string' ? pgText(value) : value;
  return out;
}

export function checkKbId(kbId: string): void {
  if (typeof kbId !== 'string' || kbId.length === 0 || kbId.length > 200) {
    throw new RangeError('kbId must be a non-empty string of at most 200 characters');
  }
}

export function checkTopK(topK: number): void {
  if (!Number.isSafeInteger(topK) || topK < 1 || topK > MAX_TOP_K) {
    throw new RangeError(`topK must be an integer from 1 to ${MAX_TOP_K}, got ${topK}`);
  }
}

export function checkPageLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new RangeError(`page limit must be an integer from 1 to ${MAX_PAGE_LIMIT}, got ${limit}`);
  }
}

export function checkHexDigits(digits: number): void {
  if (!Number.isSafeInteger(digits) || digits < 1 || digits > 32) {
    throw new RangeError(`key-hash digits must be an integer from 1 to 32, got ${digits}`);
  }
}

export function checkDocumentId(id: unknown): void {
  if (typeof id !== 'string' || id.length === 0)
    throw new RangeError('document id must be a non-empty string');
  if (pgText(id) !== id) {
    throw new RangeError(
      `document id ${JSON.stringify(id.slice(0, 80))} contains a NUL or an unpaired surrogate, which PostgreSQL cannot store`,
    );
  }
}

export function checkDocument(doc: DocumentInput, dimensions: number): void {
  checkDocumentId(doc.id);
  const seen = new Set<number>();
  for (const chunk of doc.chunks) {
    if (!Number.isSafeInteger(chunk.index) || chunk.index < 0 || seen.has(chunk.index)) {
      throw new RangeError(`document '${doc.id}': chunk indexes must be distinct non-negative integers`);
    }
    seen.add(chunk.index);
    checkEmbedding(chunk.embedding, dimensions, `document '${doc.id}' chunk ${chunk.index}`);
    // A zero vector has no cosine distance to anything (pgvector answers NaN).
    if (isZero(chunk.embedding)) {
      throw new RangeError(`document '${doc.id}' chunk ${chunk.index}: embedding is all zeros`);
    }
  }
}

export function checkEmbedding(embedding: Float32Array, dimensions: number, what: string): void {
  if (!(embedding instanceof Float32Array)) throw new TypeError(`${what} must be a Float32Array`);
  if (embedding.length !== dimensions) {
    throw new RangeError(`${what} has ${embedding.length} dimensions; the knowledge base has ${dimensions}`);
  }
  for (const x of embedding) {
    if (!Number.isFinite(x)) throw new RangeError(`${what} contains a non-finite value`);
  }
}

export function isZero(embedding: Float32Array): boolean {
  return embedding.every((x) => x === 0);
}
