/**
 * The webhook_deliveries table as both control stores lay it out (sqlite/ and postgres/
 * migrations): one row per delivery, every field a column. PostgreSQL hands bigint back as text,
 * so numbers are converted here for both.
 */
import type { WebhookDelivery, WebhookEvent, WebhookStatus } from './port.js';

export const WEBHOOK_COLUMNS =
  'id, job_id, event, url, payload, status, attempts, last_error, created_at, delivered_at, next_attempt_at';

export interface WebhookRow {
  id: string;
  job_id: string;
  event: string;
  url: string;
  payload: string;
  status: string;
  attempts: number | string;
  last_error: string | null;
  created_at: number | string;
  delivered_at: number | string | null;
  next_attempt_at: number | string;
}

export function webhookFromRow(r: WebhookRow): WebhookDelivery {
  return {
    id: r.id,
    jobId: r.job_id,
    event: r.event as WebhookEvent,
    url: r.url,
    payload: r.payload,
    status: r.status as WebhookStatus,
    attempts: Number(r.attempts),
    lastError: r.last_error,
    createdAt: Number(r.created_at),
    deliveredAt: r.delivered_at === null ? null : Number(r.delivered_at),
    nextAttemptAt: Number(r.next_attempt_at),
  };
}

/** The row's parameters in WEBHOOK_COLUMNS order. */
export function webhookParams(d: WebhookDelivery): unknown[] {
  return [d.id, d.jobId, d.event, d.url, d.payload, d.status, d.attempts, d.lastError, d.createdAt, d.deliveredAt, d.nextAttemptAt];
}
