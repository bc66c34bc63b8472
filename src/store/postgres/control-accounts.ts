/**
 * Accounts and API keys of the PostgreSQL control store (API.md, "Accounts and keys"): keys are
 * stored as SHA-256 hashes with a display prefix, never in clear. The account `default` is made
 * by the migration that creates the tables.
 */
import type { AccountRecord, ApiKeyRecord } from '../port.js';
import { num } from './control-rows.js';
import { inTransaction, sqlState } from './open.js';
import type { Queryable } from './vector-writes.js';

interface AccountRow {
  id: string;
  name: string;
  created_at: string;
}

const ACCOUNT_COLUMNS = 'id, name, created_at';

const accountFromRow = (r: AccountRow): AccountRecord => ({ id: r.id, name: r.name, createdAt: num(r.created_at) });

interface ApiKeyRow {
  id: string;
  account_id: string;
  key_hash: string;
  prefix: string;
  created_at: string;
  revoked_at: string | null;
}

const KEY_COLUMNS = 'id, account_id, key_hash, prefix, created_at, revoked_at';

const keyFromRow = (r: ApiKeyRow): ApiKeyRecord => ({
  id: r.id,
  accountId: r.account_id,
  hash: r.key_hash,
  prefix: r.prefix,
  createdAt: num(r.created_at),
  revokedAt: r.revoked_at === null ? null : num(r.revoked_at),
});

type Pool = Parameters<typeof inTransaction>[0];

/** The account, and its first key, in one transaction; 'duplicate' when the id or name is taken. */
export async function insertAccount(pool: Pool, record: AccountRecord, firstKey?: ApiKeyRecord): Promise<'ok' | 'duplicate'> {
  try {
    await inTransaction(pool, async (client) => {
      await client.query('INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)', [record.id, record.name, record.createdAt]);
      if (firstKey) await insertKey(client, firstKey);
    });
    return 'ok';
  } catch (err) {
    if (sqlState(err) === '23505') return 'duplicate';
    throw err;
  }
}

export async function getAccount(pool: Queryable, idOrName: string): Promise<AccountRecord | null> {
  const { rows } = await pool.query<AccountRow>(
    `SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1`,
    [idOrName],
  );
  return rows[0] ? accountFromRow(rows[0]) : null;
}

export async function listAccounts(pool: Queryable): Promise<AccountRecord[]> {
  const { rows } = await pool.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, id`);
  return rows.map(accountFromRow);
}

/** Throws when the hash is taken or the account does not exist (unique and foreign keys). */
export async function insertKey(pool: Queryable, r: ApiKeyRecord): Promise<void> {
  await pool.query('INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)', [
    r.id,
    r.accountId,
    r.hash,
    r.prefix,
    r.createdAt,
    r.revokedAt,
  ]);
}

export async function findKeyByHash(pool: Queryable, hash: string): Promise<ApiKeyRecord | null> {
  const { rows } = await pool.query<ApiKeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_hash = $1`, [hash]);
  return rows[0] ? keyFromRow(rows[0]) : null;
}

export async function listKeys(pool: Queryable, accountId: string): Promise<ApiKeyRecord[]> {
  const { rows } = await pool.query<ApiKeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE account_id = $1 ORDER BY created_at, id`, [
    accountId,
  ]);
  return rows.map(keyFromRow);
}

/** A key already revoked keeps its time; RETURNING gives the row as stored afterwards. */
export async function revokeKey(pool: Queryable, accountId: string, keyId: string, now: number): Promise<ApiKeyRecord | null> {
  const { rows } = await pool.query<ApiKeyRow>(
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE account_id = $1 AND id = $2 RETURNING ${KEY_COLUMNS}`,
    [accountId, keyId, now],
  );
  return rows[0] ? keyFromRow(rows[0]) : null;
}
