/**
 * Content hashing for change detection: a row whose document text hashes the same as the stored
 * one is not re-embedded. The one file in core/ allowed to import node:crypto, because a
 * hand-written hash would be slower and a source of subtle bugs.
 */
import crypto, { createHash } from 'node:crypto';

/** SHA-256 of the text's UTF-8 bytes, as 64 lower-case hex digits. */
export function contentHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * The text a key is hashed from for delete reconciliation (SEMANTICS.md, "Deletes"): a single
 * key is its text form; a composite key is each part prefixed by its length in characters
 * (`3:abc2:de`), so no value can make two keys collide. Every source dialect builds the same
 * string in SQL (sources/shared.ts), so a key hashes the same inside the source and here.
 */
export function keyHashInput(key: readonly string[]): string {
  if (key.length === 1) return key[0]!;
  return key.map((part) => `${Array.from(part).length}:${part}`).join('');
}

/** Node's one-shot hash (20.12+), about 3x faster than createHash for short inputs. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/** MD5 of the key's hash input, 32 hex digits: the one hash every source engine computes itself. */
export function keyHash(key: readonly string[]): string {
  const input = keyHashInput(key);
  return oneShot ? oneShot('md5', input, 'hex') : createHash('md5').update(input, 'utf8').digest('hex');
}

/** The 32-bit number a key adds to its bucket's checksum: hex digits 25-32 of its key hash. */
export function keyHashTerm(hash: string): number {
  return Number.parseInt(hash.slice(24, 32), 16);
}
