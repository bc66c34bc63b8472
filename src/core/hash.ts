/**
 * Content hashing for change detection: a row whose document text hashes the same as the stored
 * one is not re-embedded. The one file in core/ allowed to import node:crypto, because a
 * hand-written hash would be slower and a source of subtle bugs.
 */
import { createHash } from 'node:crypto';

/** SHA-256 of the text's UTF-8 bytes, as 64 lower-case hex digits. */
export function contentHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
