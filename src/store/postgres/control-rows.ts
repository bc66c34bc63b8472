/**
 * What the PostgreSQL control store's files share (control-store.ts, control-failures.ts,
 * control-accounts.ts): bodies are `json` columns the driver parses; bigint columns (epoch ms,
 * counts) arrive as strings and are turned back into numbers, so records compare field for field
 * with the SQLite store's.
 */
import { createHash } from 'node:crypto';
import type { JobRecord, Page } from '../port.js';

/** pg hands bigint (int8) back as text: epoch ms and counts fit a double exactly. */
export const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
export const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));

/** The parameters of a job row in column order: id, account_id, name, status, kb_name, database_name, next_run_ms, body. */
export function jobParams(r: JobRecord): unknown[] {
  return [r.id, r.accountId, r.name, r.status, r.kbName, r.databaseName, r.nextRunMs, JSON.stringify(r)];
}

/**
 * The advisory-lock key of an account's job namespace in one schema: the first 8 bytes of a
 * SHA-256, as a signed 64-bit integer in text (the driver sends it as a bigint parameter).
 * Advisory locks are database-wide, so the schema is part of the key; a collision between two
 * accounts would only make them wait for each other.
 */
export function accountLockKey(schema: string, accountId: string): string {
  return createHash('sha256').update(`kbsync:${schema}:account:${accountId}`).digest().readBigInt64BE(0).toString();
}

/** A page from `limit + 1` rows: the extra row only says that another page exists. */
export function page<T>(rows: T[], limit: number, cursorOf: (item: T) => string): Page<T> {
  const items = rows.slice(0, limit);
  return { items, next: rows.length > limit && items.length > 0 ? cursorOf(items.at(-1)!) : null };
}
