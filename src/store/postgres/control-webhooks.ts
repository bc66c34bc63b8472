/**
 * Webhook deliveries of the PostgreSQL control store (ControlStore.enqueueWebhook and its kin).
 * A claim is one UPDATE over rows picked FOR UPDATE SKIP LOCKED: processes of a fleet claiming
 * at once each get different deliveries, and none waits for another.
 */
import type { Page, WebhookDelivery, WebhookOutcome } from '../port.js';
import { WEBHOOK_COLUMNS, type WebhookRow, webhookFromRow, webhookParams } from '../webhook-rows.js';
import { page } from './control-rows.js';
import type { Queryable } from './vector-writes.js';

const placeholders = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ');

export async function enqueue(db: Queryable, d: WebhookDelivery): Promise<void> {
  const params = webhookParams(d);
  // A job deleted meanwhile queues nothing (rather than failing on the foreign key).
  await db.query(
    `INSERT INTO webhook_deliveries (${WEBHOOK_COLUMNS}) SELECT ${placeholders(params.length)}
     WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $2)`,
    params,
  );
}

export async function claim(db: Queryable, owner: string, now: number, holdMs: number, limit: number): Promise<WebhookDelivery[]> {
  const { rows } = await db.query(
    `UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $2
     WHERE id IN (
       SELECT id FROM webhook_deliveries
       WHERE status = 'pending' AND next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until < $3)
       ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
     RETURNING ${WEBHOOK_COLUMNS}`,
    [owner, now + holdMs, now, limit],
  );
  return (rows as WebhookRow[]).map(webhookFromRow).sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || (a.id < b.id ? -1 : 1));
}

export async function settle(db: Queryable, id: string, owner: string, o: WebhookOutcome): Promise<boolean> {
  const res = await db.query(
    `UPDATE webhook_deliveries SET status = $1, attempts = $2, last_error = $3, delivered_at = $4, next_attempt_at = $5,
       claimed_by = NULL, claimed_until = NULL
     WHERE id = $6 AND claimed_by = $7`,
    [o.status, o.attempts, o.lastError, o.deliveredAt, o.nextAttemptAt, id, owner],
  );
  return (res.rowCount ?? 0) > 0;
}

export async function list(db: Queryable, jobId: string, p: { limit: number; cursor: string | null }): Promise<Page<WebhookDelivery>> {
  const { rows } =
    p.cursor === null
      ? await db.query(`SELECT ${WEBHOOK_COLUMNS} FROM webhook_deliveries WHERE job_id = $1 ORDER BY id DESC LIMIT $2`, [jobId, p.limit + 1])
      : await db.query(`SELECT ${WEBHOOK_COLUMNS} FROM webhook_deliveries WHERE job_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, [
          jobId,
          p.cursor,
          p.limit + 1,
        ]);
  return page((rows as WebhookRow[]).map(webhookFromRow), p.limit, (d) => d.id);
}
