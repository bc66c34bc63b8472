/**
 * The knowledge_bases table as both control stores lay it out (sqlite/ and postgres/ migrations):
 * `body` holds the record's own fields (name, description, embedding, secret, chunking…), and the
 * columns beside it what rebuilds write (SQLite migration 12, PostgreSQL migration 6):
 *
 * - `collection`: where queries and writes go (NULL in a row an older process wrote: the id).
 * - `rebuild`: what a rebuild is built with and never changes while it lives (shadow collection,
 *   embedding, encrypted secret, chunking, start time), as JSON; NULL when there never was one.
 * - `rebuild_status`, `rebuild_owner`, `rebuild_lease_expires_at`, `rebuild_documents_done`,
 *   `rebuild_documents_total`, `rebuild_cursor`, `rebuild_finished_at`, `rebuild_error`: every
 *   field a rebuild's writes change, each its own column, so each write is a plain conditional
 *   UPDATE (claim, progress, transition) with no JSON edited in SQL: PostgreSQL keeps bodies as
 *   `json` (not `jsonb`) so text comes back byte for byte, and `json` has no in-place edit.
 *
 * PostgreSQL hands `json` back parsed and bigint back as text; SQLite hands back text and numbers:
 * both are accepted here.
 */
import {
  ACTIVE_REBUILD_STATUSES,
  type KnowledgeBaseRecord,
  type KnowledgeBaseSettings,
  type RebuildRecord,
  type RebuildStatus,
} from './port.js';

export const KB_COLUMNS =
  'body, collection, rebuild, rebuild_status, rebuild_owner, rebuild_lease_expires_at, rebuild_documents_done, rebuild_documents_total, rebuild_cursor, rebuild_finished_at, rebuild_error';

/** A rebuild a worker must carry on (running or swapping), as SQL on the knowledge_bases row. */
export const ACTIVE_REBUILD_SQL = `rebuild_status IN (${ACTIVE_REBUILD_STATUSES.map((s) => `'${s}'`).join(', ')})`;

/** The columns insertKnowledgeBase writes, in kbInsertParams order. */
export const KB_INSERT_COLUMNS = `id, account_id, name, ${KB_COLUMNS}`;

export interface KnowledgeBaseRow {
  body: string | Record<string, unknown>;
  collection: string | null;
  rebuild: string | Record<string, unknown> | null;
  rebuild_status: string | null;
  rebuild_owner: string | null;
  rebuild_lease_expires_at: number | string | null;
  rebuild_documents_done: number | string | null;
  rebuild_documents_total: number | string | null;
  rebuild_cursor: string | null;
  rebuild_finished_at: number | string | null;
  rebuild_error: string | Record<string, unknown> | null;
}

/** What the `rebuild` column holds: the parts of a RebuildRecord fixed when it starts. */
type RebuildConfig = Pick<RebuildRecord, 'collection' | 'embedding' | 'secret' | 'chunking' | 'startedAt'>;

const json = <T>(v: string | Record<string, unknown>): T => (typeof v === 'string' ? JSON.parse(v) : v) as T;
const numOrNull = (v: number | string | null): number | null => (v === null ? null : Number(v));

export function kbFromRow(r: KnowledgeBaseRow): KnowledgeBaseRecord {
  const body = json<Omit<KnowledgeBaseRecord, 'collection' | 'rebuild'>>(r.body);
  return { ...body, collection: r.collection ?? body.id, rebuild: rebuildFromRow(r) };
}

function rebuildFromRow(r: KnowledgeBaseRow): RebuildRecord | null {
  if (r.rebuild === null || r.rebuild_status === null) return null;
  const config = json<RebuildConfig>(r.rebuild);
  return {
    status: r.rebuild_status as RebuildStatus,
    collection: config.collection,
    embedding: config.embedding,
    secret: config.secret,
    chunking: config.chunking,
    documentsDone: Number(r.rebuild_documents_done ?? 0),
    documentsTotal: Number(r.rebuild_documents_total ?? 0),
    cursor: r.rebuild_cursor,
    startedAt: config.startedAt,
    finishedAt: numOrNull(r.rebuild_finished_at),
    error: r.rebuild_error === null ? null : json<{ code: string; message: string }>(r.rebuild_error),
    owner: r.rebuild_owner,
    leaseExpiresAt: numOrNull(r.rebuild_lease_expires_at),
  };
}

/** The body column: the record without what has columns of its own. */
export function kbBody(record: KnowledgeBaseRecord): string {
  const { collection: _collection, rebuild: _rebuild, ...body } = record;
  return JSON.stringify(body);
}

/**
 * The rebuild columns' values in REBUILD_COLUMNS order (the `rebuild` and `rebuild_error` values
 * as JSON text), all null for none.
 */
export function rebuildParams(rebuild: RebuildRecord | null): unknown[] {
  if (rebuild === null) return Array.from({ length: 9 }, () => null);
  const config: RebuildConfig = {
    collection: rebuild.collection,
    embedding: rebuild.embedding,
    secret: rebuild.secret,
    chunking: rebuild.chunking,
    startedAt: rebuild.startedAt,
  };
  return [
    JSON.stringify(config),
    rebuild.status,
    rebuild.owner,
    rebuild.leaseExpiresAt,
    rebuild.documentsDone,
    rebuild.documentsTotal,
    rebuild.cursor,
    rebuild.finishedAt,
    rebuild.error === null ? null : JSON.stringify(rebuild.error),
  ];
}

/** The parameters of KB_INSERT_COLUMNS. `collection` and `rebuild` absent (a caller older than them): NULL. */
export function kbInsertParams(record: KnowledgeBaseRecord): unknown[] {
  return [
    record.id,
    record.accountId,
    record.name,
    kbBody(record),
    record.collection ?? null,
    ...rebuildParams(record.rebuild ?? null),
  ];
}

/** The rebuild columns' names in rebuildParams order (for UPDATE … SET). */
export const REBUILD_COLUMNS = [
  'rebuild',
  'rebuild_status',
  'rebuild_owner',
  'rebuild_lease_expires_at',
  'rebuild_documents_done',
  'rebuild_documents_total',
  'rebuild_cursor',
  'rebuild_finished_at',
  'rebuild_error',
] as const;

/** The knowledge base's body and collection after a rebuild's swap: the rebuild's configuration. */
export function afterSwap(
  body: string | Record<string, unknown>,
  rebuild: string | Record<string, unknown>,
): { body: string; collection: string } {
  const current = json<Record<string, unknown>>(body);
  const config = json<RebuildConfig>(rebuild);
  return {
    body: JSON.stringify({
      ...current,
      embedding: config.embedding,
      secret: config.secret,
      chunking: config.chunking,
    }),
    collection: config.collection,
  };
}

/** The body after a settings PATCH (port.ts KnowledgeBaseSettings): only the given fields change. */
export function withSettings(body: string | Record<string, unknown>, settings: KnowledgeBaseSettings): string {
  const current = json<Record<string, unknown>>(body);
  const next: Record<string, unknown> = { ...current };
  if (settings.description !== undefined) next.description = settings.description;
  if (settings.secret !== undefined) next.secret = settings.secret;
  if (settings.pricePerMillionTokens !== undefined) {
    next.embedding = { ...(current.embedding as Record<string, unknown>), price_per_million_tokens: settings.pricePerMillionTokens };
  }
  return JSON.stringify(next);
}
