/**
 * Checks on what the vector store is given, with the messages callers see (the PostgreSQL
 * adapter's vector-input.ts keeps the same rules), and the query vector's bytes.
 */
import type { DocumentInput } from '../vector-port.js';

/** sqlite-vec refuses a KNN `k` above 4096; one search never needs more. */
export const MAX_TOP_K = 4096;
export const MAX_PAGE_LIMIT = 10_000;

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

export function checkDocument(doc: DocumentInput, dimensions: number): void {
  if (typeof doc.id !== 'string' || doc.id.length === 0) {
    throw new RangeError('document id must be a non-empty string');
  }
  const seen = new Set<number>();
  for (const chunk of doc.chunks) {
    if (!Number.isSafeInteger(chunk.index) || chunk.index < 0 || seen.has(chunk.index)) {
      throw new RangeError(`document '${doc.id}': chunk indexes must be distinct non-negative integers`);
    }
    seen.add(chunk.index);
    checkEmbedding(chunk.embedding, dimensions, `document '${doc.id}' chunk ${chunk.index}`);
    // A stored zero vector has no cosine distance to anything, and sqlite-vec would sort its NULL
    // distance ahead of every real neighbour.
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

/** A view of exactly the array's bytes: a Float32Array may sit at an offset inside a larger buffer. */
export function vectorBlob(embedding: Float32Array): Buffer {
  return Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength);
}
