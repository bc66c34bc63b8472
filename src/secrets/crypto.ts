/**
 * Secrets at rest (database passwords, embedding API keys): AES-256-GCM with a key from
 * KBSYNC_SECRET_KEY, or a random key generated once into the data dir with mode 0600.
 * Ciphertext format: "v1:" + base64(iv[12] | tag[16] | ciphertext).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('secret key must be 32 bytes');
    this.key = key;
  }

  /** A 64-hex-digit or 44-char base64 value is used as is; any other passphrase is hashed to 32 bytes. */
  static fromSetting(setting: string): SecretBox {
    if (/^[0-9a-f]{64}$/i.test(setting)) return new SecretBox(Buffer.from(setting, 'hex'));
    const b64 = /^[A-Za-z0-9+/]{43}=$/.test(setting) ? Buffer.from(setting, 'base64') : null;
    if (b64?.length === 32) return new SecretBox(b64);
    return new SecretBox(createHash('sha256').update(setting, 'utf8').digest());
  }

  /** Reads dataDir/secret.key, creating it (mode 0600, exclusive) when absent. */
  static fromDataDir(dataDir: string): SecretBox {
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, 'secret.key');
    try {
      fs.writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    return SecretBox.fromSetting(fs.readFileSync(file, 'utf8').trim());
  }

  encrypt(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `v1:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
  }

  decrypt(sealed: string): string {
    if (!sealed.startsWith('v1:')) throw new Error('unknown secret format');
    const raw = Buffer.from(sealed.slice(3), 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  }
}
