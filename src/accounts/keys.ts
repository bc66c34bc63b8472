/**
 * API keys: `kbs_` + 32 random bytes (base64url). Only a SHA-256 hash of a key is stored (a key
 * has 256 bits of entropy, so a fast hash is enough: nothing to brute-force), plus a short prefix
 * so a person can tell keys apart in a listing. The admin key from configuration is compared in
 * constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const KEY_PREFIX = 'kbs_';
/** Characters of a key kept for display: `kbs_` and 8 more (48 of its 256 bits). */
const DISPLAY_CHARS = KEY_PREFIX.length + 8;

export function generateApiKey(): string {
  return `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The stored form of a key: hex SHA-256. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function displayPrefix(key: string): string {
  return key.slice(0, DISPLAY_CHARS);
}

/** Constant-time equality of two secrets of any length (compares their SHA-256 digests). */
export function secretsEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match ? match[1]! : null;
}
