/**
 * What the pages show, worked out from API answers: progress frames, hints after a failed run,
 * readable numbers, durations and times. Pure functions without the DOM or preact, so node's test
 * runner checks them (test/e2e/dashboard.test.ts) as well as the browser.
 */

/**
 * One frame of a run's progress (API.md "Jobs": `progress` while a run works, else null): a known
 * total gives percent, rows of total and the ETA; a run without an estimate (or a server without
 * `progress`) gives only the rows read so far.
 */
export function progressFrame(run) {
  const p = run?.progress;
  if (p && typeof p.rows_total_estimate === 'number' && p.rows_total_estimate > 0) {
    const done = p.rows_done ?? 0;
    const total = Math.max(p.rows_total_estimate, done);
    const percent = Math.min(100, Math.max(0, p.percent ?? (100 * done) / total));
    return { done, total, percent, eta: p.eta_seconds ?? null };
  }
  return { done: p?.rows_done ?? run?.rows_read ?? 0, total: null, percent: null, eta: null };
}

/** The frame as one line: `42% · 126 / 300 rows · ETA 3 s`, or `126 rows read`. */
export function progressText(frame) {
  if (frame.percent === null) return `${count(frame.done)} rows read`;
  const eta = frame.eta === null ? '' : ` · ETA ${duration(frame.eta * 1000)}`;
  return `${Math.floor(frame.percent)}% · ${count(frame.done)} / ${count(frame.total)} rows${eta}`;
}

/**
 * What to do after a run that did not succeed, and about rows that failed: the same advice as the
 * CLI's `jobs run --wait` (src/cli/commands/jobs.ts), with the buttons of the job page instead of
 * commands. The run's own message already says what broke; this says what happens next.
 */
export function runHints(run, job) {
  const hints = [];
  if (run.status === 'cancelled') {
    hints.push(
      'The run was cancelled: the job was paused or deleted, or the server shut down. Resume or Run now to go on.',
    );
  } else if (run.status === 'failed') {
    const specific = CODE_HINTS[run.error?.code ?? ''];
    if (specific) hints.push(specific);
    if (job?.status === 'failed' && job.last_run?.run_id === run.run_id) {
      hints.push('The job stopped after this run: fix the cause, then press Resume.');
    } else if (job?.status === 'scheduled' || job?.status === 'running') {
      hints.push(
        'The job stays scheduled: its next tick retries from the last checkpoint, or press Run now.',
      );
    }
  }
  if (run.rows_failed > 0) {
    hints.push(
      `${count(run.rows_failed)} rows could not be synced: see Failed rows below, fix them at the source, then Retry failed rows.`,
    );
  }
  return hints;
}

const CODE_HINTS = {
  SOURCE_TIMEOUT:
    'A source query ran longer than KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS or waited for a lock: an index on the filter column, or a quieter time, helps.',
  PROVIDER_REFUSED:
    "The embedding provider refused the request: check the knowledge base's embedding settings (model, key, base_url).",
  INTERRUPTED: 'The server stopped while the run worked; the next run goes on from the last checkpoint.',
  KEYSET_STUCK: "The job's key columns do not order the rows uniquely: check the table's primary key.",
};

/** A job or run that is working now: the pages poll fast while one is. */
export function isBusy(job) {
  return job?.status === 'running' || job?.last_run?.status === 'running';
}

/** 1234567 → `1,234,567`; null → `–`. */
export function count(n) {
  return typeof n === 'number' && Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

/** A duration in ms as people say it: `850 ms`, `4.2 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`. */
export function duration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const whole = Math.round(s);
  const [d, h, m, sec] = [
    Math.floor(whole / 86400),
    Math.floor(whole / 3600) % 24,
    Math.floor(whole / 60) % 60,
    whole % 60,
  ];
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  return sec > 0 ? `${m} min ${sec} s` : `${m} min`;
}

/** An RFC 3339 time relative to `nowMs`: `in 4 min`, `12 s ago`, `just now`. */
export function relative(iso, nowMs = Date.now()) {
  if (!iso) return '–';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return String(iso);
  const delta = t - nowMs;
  if (Math.abs(delta) < 1500) return 'just now';
  return delta > 0 ? `in ${duration(delta)}` : `${duration(-delta)} ago`;
}

/** An RFC 3339 time as `2025-06-19 18:00:00 UTC` (the API's clock; the relative form is local). */
export function utc(iso) {
  if (!iso) return '–';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return String(iso);
  return `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A metadata value as text: strings as they are, anything else as JSON. */
export function showValue(v) {
  if (v === null || v === undefined) return 'null';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Where a registered database is, without its secret (the API masks the password already). */
export function databaseWhere(db) {
  const p = db?.parameters ?? {};
  if (typeof p.url === 'string') return p.url;
  if (typeof p.path === 'string') return p.path;
  const host = p.host ? `${p.host}${p.port ? `:${p.port}` : ''}` : '';
  const name = [p.database, p.schema].filter(Boolean).join('.');
  return [host, name].filter(Boolean).join('/') || '–';
}
