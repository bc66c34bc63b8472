/**
 * Job events for a job's `webhook_url` (API.md "Cost and freshness"): `run.failed`, `job.failed`,
 * `job.lagging`. An event is queued in the control store (ControlStore.enqueueWebhook) once the
 * write that decided it is done, then sent by the dispatcher of whichever process claims it
 * (claimWebhooks: atomic, so one process sends it): a JSON POST signed
 * `X-Kbsync-Signature: sha256=<hex HMAC-SHA256 of the body>` with the job's secret, under a
 * timeout; a 2xx delivers it, anything else is retried with exponential backoff (1×, 2×, 4×… the
 * base) until `maxAttempts`, then it is `failed`. The URL is followed as stored (redirects are
 * not followed: a 3xx is a failed attempt), so the host rules checked at create/PATCH hold.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { newId } from '../core/ids.js';
import { lagSeconds } from '../core/lag.js';
import type { SecretBox } from '../secrets/crypto.js';
import type { ControlStore, JobRecord, RunRecord, WebhookDelivery, WebhookEvent } from '../store/port.js';

export interface WebhookOptions {
  /** How often due deliveries (retries, other processes' events) are looked for, in ms. */
  pollMs: number;
  /** Longest a POST may take, in ms. */
  timeoutMs: number;
  /** Attempts before a delivery is `failed`. */
  maxAttempts: number;
  /** Wait before the second attempt, doubled for each later one, in ms. */
  backoffMs: number;
}

export const DEFAULT_WEBHOOK_OPTIONS: Readonly<WebhookOptions> = Object.freeze({
  pollMs: 2_000,
  timeoutMs: 10_000,
  maxAttempts: 5,
  backoffMs: 5_000,
});

/** Deliveries claimed at a time. */
const CLAIM_BATCH = 20;

/** A new webhook secret: 32 random bytes, shown to the user once. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/** The X-Kbsync-Signature header value for `body`. */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** The events a write of a job's end of run (or check) decides, comparing the job before and after. */
export function eventsOf(before: JobRecord, after: JobRecord, run: RunRecord | null): WebhookEvent[] {
  const events: WebhookEvent[] = [];
  if (run?.status === 'failed') events.push('run.failed');
  if (after.status === 'failed' && before.status !== 'failed') events.push('job.failed');
  if (after.lagAlerted === true && before.lagAlerted !== true) events.push('job.lagging');
  return events;
}

export class WebhookDispatcher {
  private readonly options: WebhookOptions;
  private timer: NodeJS.Timeout | null = null;
  /** The round in flight, if any (one at a time per process). */
  private round: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly store: ControlStore,
    private readonly secrets: SecretBox,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** This process's id in the fleet: the claims' owner. */
    private readonly owner: string,
    options: Partial<WebhookOptions> = {},
  ) {
    this.options = { ...DEFAULT_WEBHOOK_OPTIONS, ...options };
  }

  /** Polls for due deliveries until stop(). */
  start(): void {
    if (this.timer !== null || this.stopped) return;
    this.timer = setInterval(() => this.kick(), this.options.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.round;
  }

  /**
   * Queues the events for `job` (nothing without a webhook_url) and sends them soon. Never throws:
   * a store fault loses the event, logged, rather than failing the run's bookkeeping.
   */
  async emit(job: JobRecord, events: WebhookEvent[], run: RunRecord | null): Promise<void> {
    if (!job.webhookUrl || events.length === 0) return;
    const now = this.clock.now();
    for (const event of events) {
      const delivery: WebhookDelivery = {
        id: newId('whd', now),
        jobId: job.id,
        event,
        url: job.webhookUrl,
        payload: JSON.stringify(payloadOf(event, job, run, now)),
        status: 'pending',
        attempts: 0,
        lastError: null,
        createdAt: now,
        deliveredAt: null,
        nextAttemptAt: now,
      };
      try {
        await this.store.enqueueWebhook(delivery);
      } catch (err) {
        this.logger.error({ err, job: job.name, event }, 'could not queue a webhook event');
      }
    }
    this.kick();
  }

  /** Sends what is due now, soon; a round in flight is followed by another. */
  kick(): void {
    if (this.stopped) return;
    if (this.round !== null) {
      this.again = true;
      return;
    }
    this.round = this.sendDue()
      .catch((err) => this.logger.error({ err }, 'webhook round failed'))
      .finally(() => {
        this.round = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves once no round is in flight (tests). */
  async idle(): Promise<void> {
    while (this.round !== null) await this.round;
  }

  private async sendDue(): Promise<void> {
    // The claim outlives the POST's timeout, so a live sender never loses it mid-send.
    const hold = this.options.timeoutMs * 2 + 5_000;
    const due = await this.store.claimWebhooks(this.owner, this.clock.now(), hold, CLAIM_BATCH);
    await Promise.all(due.map((d) => this.attempt(d)));
    if (due.length === CLAIM_BATCH) this.again = true;
  }

  private async attempt(d: WebhookDelivery): Promise<void> {
    const attempts = d.attempts + 1;
    let error: string | null = null;
    try {
      const job = await this.store.getJobById(d.jobId);
      if (job === null) return; // deleted: its deliveries went with it
      if (!job.webhookSecret) throw new Error('the job has no webhook secret');
      const res = await fetch(d.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'kbsync-webhooks',
          'x-kbsync-event': d.event,
          'x-kbsync-delivery': d.id,
          'x-kbsync-signature': signature(this.secrets.decrypt(job.webhookSecret), d.payload),
        },
        body: d.payload,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status < 200 || res.status > 299) error = `HTTP ${res.status}`;
    } catch (err) {
      error = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${this.options.timeoutMs} ms` : describe(err);
    }
    const now = this.clock.now();
    const outcome =
      error === null
        ? { status: 'delivered' as const, attempts, lastError: null, deliveredAt: now, nextAttemptAt: now }
        : attempts >= this.options.maxAttempts
          ? { status: 'failed' as const, attempts, lastError: error, deliveredAt: null, nextAttemptAt: now }
          : { status: 'pending' as const, attempts, lastError: error, deliveredAt: null, nextAttemptAt: now + this.options.backoffMs * 2 ** (attempts - 1) };
    try {
      await this.store.settleWebhook(d.id, this.owner, outcome);
    } catch (err) {
      // The claim lapses and another round (here or elsewhere) tries again.
      this.logger.error({ err, delivery: d.id }, 'could not record a webhook attempt');
    }
    if (outcome.status === 'pending') {
      // Woken for the retry even when polling is slower than the backoff.
      setTimeout(() => this.kick(), outcome.nextAttemptAt - now + 10).unref();
    }
  }
}

function payloadOf(event: WebhookEvent, job: JobRecord, run: RunRecord | null, now: number) {
  return {
    event,
    occurred_at: new Date(now).toISOString(),
    job: { job_id: job.id, job_name: job.name, status: job.status, status_reason: job.statusReason, source_table: job.sourceTable, kb_name: job.kbName },
    run: run === null ? null : { run_id: run.id, status: run.status, error: run.error },
    ...(event === 'job.lagging' ? { lag_seconds: lagSeconds(job.lag, now), alert_lag_seconds: job.alertLagSeconds ?? null } : {}),
  };
}

/** A send error in a few words, never a URL's query (it may hold a token). */
function describe(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const text = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : String(cause);
  return text.slice(0, 200);
}
