/**
 * Accounts and API keys (API.md, "Accounts and keys"). Every database, knowledge base and job
 * belongs to one account; a key belongs to one account and is shown once, when it is created.
 * The store keeps only its hash, so a key is checked by hashing what the client sent and looking
 * the hash up: no cache, so a revoked key stops working with the next request.
 */
import { z } from 'zod';
import { type Clock, systemClock } from '../core/clock.js';
import { notFound, problemsToError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { formatTime } from '../core/time.js';
import { issuesToProblems } from '../core/validation.js';
import { AppError } from '../core/errors.js';
import type { AccountRecord, ApiKeyRecord, ControlStore } from '../store/port.js';
import { displayPrefix, generateApiKey, hashApiKey } from './keys.js';

const ACCOUNT_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export const CreateAccountBody = z.strictObject({
  name: z
    .string({ error: 'name must be a string' })
    .min(1, 'name must not be empty')
    .max(63, 'name must be at most 63 characters')
    .regex(
      ACCOUNT_NAME_RE,
      'name may contain only letters, digits, _, . and -, and must not start with . or -',
    ),
});

export interface NewKey {
  record: ApiKeyRecord;
  /** The key itself: returned to the caller once, never stored. */
  key: string;
}

export class AccountService {
  constructor(
    private readonly store: ControlStore,
    private readonly clock: Clock = systemClock,
  ) {}

  /** A new account and its first key. */
  async create(body: unknown): Promise<{ account: AccountRecord; key: NewKey }> {
    const parsed = CreateAccountBody.safeParse(body ?? {}, { reportInput: true });
    if (!parsed.success) throw problemsToError(issuesToProblems(parsed.error.issues), 'Invalid account');
    const account: AccountRecord = { id: newId('acct'), name: parsed.data.name, createdAt: this.clock.now() };
    const key = this.newKey(account.id);
    if ((await this.store.insertAccount(account, key.record)) === 'duplicate') {
      throw new AppError('CONFLICT', 'Account name taken', [
        `an account named '${account.name}' already exists`,
      ]);
    }
    return { account, key };
  }

  /** The account named `name`, created when missing (the `kbsync keys create` command). */
  async ensure(name: string): Promise<{ account: AccountRecord; created: boolean }> {
    const parsed = CreateAccountBody.safeParse({ name });
    if (!parsed.success) throw problemsToError(issuesToProblems(parsed.error.issues), 'Invalid account');
    const existing = await this.store.getAccount(name);
    if (existing && existing.name === name) return { account: existing, created: false };
    const account: AccountRecord = { id: newId('acct'), name, createdAt: this.clock.now() };
    if ((await this.store.insertAccount(account)) === 'duplicate') {
      const raced = await this.store.getAccount(name);
      if (raced) return { account: raced, created: false };
    }
    return { account, created: true };
  }

  list(): Promise<AccountRecord[]> {
    return this.store.listAccounts();
  }

  /** By id or name; 404 otherwise. */
  async get(idOrName: string): Promise<AccountRecord> {
    const account = await this.store.getAccount(idOrName);
    if (!account) throw notFound('account', idOrName);
    return account;
  }

  async createKey(idOrName: string): Promise<{ account: AccountRecord; key: NewKey }> {
    const account = await this.get(idOrName);
    const key = this.newKey(account.id);
    await this.store.insertApiKey(key.record);
    return { account, key };
  }

  async listKeys(idOrName: string): Promise<ApiKeyRecord[]> {
    const account = await this.get(idOrName);
    return this.store.listApiKeys(account.id);
  }

  async revokeKey(idOrName: string, keyId: string): Promise<ApiKeyRecord> {
    const account = await this.get(idOrName);
    const revoked = await this.store.revokeApiKey(account.id, keyId, this.clock.now());
    if (!revoked) throw notFound('API key', keyId);
    return revoked;
  }

  /** The account a key acts for and the key's id, or null (unknown, malformed or revoked: the caller cannot tell which). */
  async authenticate(key: string): Promise<{ accountId: string; keyId: string } | null> {
    if (key.length > 256) return null;
    const record = await this.store.findApiKeyByHash(hashApiKey(key));
    if (!record || record.revokedAt !== null) return null;
    return { accountId: record.accountId, keyId: record.id };
  }

  private newKey(accountId: string): NewKey {
    const key = generateApiKey();
    return {
      key,
      record: {
        id: newId('key'),
        accountId,
        hash: hashApiKey(key),
        prefix: displayPrefix(key),
        createdAt: this.clock.now(),
        revokedAt: null,
      },
    };
  }

  static presentAccount(account: AccountRecord) {
    return { account_id: account.id, name: account.name, created_at: formatTime(account.createdAt) };
  }

  static presentKey(key: ApiKeyRecord) {
    return {
      key_id: key.id,
      prefix: key.prefix,
      created_at: formatTime(key.createdAt),
      revoked_at: key.revokedAt === null ? null : formatTime(key.revokedAt),
    };
  }
}
