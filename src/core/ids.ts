/**
 * Identifiers: a prefix, then a time-ordered ULID-style body (48-bit ms time + 80 random bits,
 * Crockford base32), so sorting ids sorts by creation time and ids double as page cursors.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

let lastTime = 0;
let lastRandom: Uint8Array = new Uint8Array(10);

function encode(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

export function newId(prefix: 'job' | 'run' | 'db' | 'kb' | 'kbc' | 'acct' | 'key' | 'whd', now = Date.now()): string {
  let random: Uint8Array;
  if (now <= lastTime) {
    // Same millisecond (or a clock step back): increment so ids stay strictly increasing.
    random = Uint8Array.from(lastRandom);
    for (let i = random.length - 1; i >= 0; i--) {
      random[i] = (random[i]! + 1) & 0xff;
      if (random[i] !== 0) break;
    }
    now = lastTime;
  } else {
    random = randomBytes(10);
  }
  lastTime = now;
  lastRandom = random;
  const time = new Uint8Array(6);
  let t = now;
  for (let i = 5; i >= 0; i--) {
    time[i] = t % 256;
    t = Math.floor(t / 256);
  }
  return `${prefix}_${encode(time)}${encode(random)}`;
}
