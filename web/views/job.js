/**
 * A job's page: what it syncs and its state, pause / resume / run now, the run in progress, the
 * run history (chart and table with counters, duration, error and what to do) and its failed rows.
 */
import { api, seg } from '../api.js';
import { RunChart } from '../chart.js';
import {
  ErrorBox,
  Facts,
  html,
  Loading,
  Progress,
  Status,
  usePolling,
  useNow,
  useTitle,
  When,
} from '../components.js';
import { useState } from '../vendor/hooks.module.js';
import { count, duration, isBusy, runHints, showValue, utc } from '../model.js';

async function loadJob(name) {
  const path = `jobs/${seg(name)}`;
  const [job, runs, failures] = await Promise.all([
    api('GET', path),
    api('GET', `${path}/runs?limit=100`),
    api('GET', `${path}/failures?limit=100`),
  ]);
  const list = runs.runs ?? [];
  return {
    job,
    runs: list,
    failures: failures.failures ?? [],
    busy: isBusy(job) || list[0]?.status === 'running',
  };
}

/** The action buttons; each posts, shows what the server said, and reloads the page's data. */
function Actions({ job, running, failures, reload }) {
  const [pending, setPending] = useState(null);
  const [outcome, setOutcome] = useState(null);
  const act = async (label, path, done) => {
    setPending(label);
    setOutcome(null);
    try {
      await api('POST', `jobs/${seg(job.job_name)}/${path}`);
      setOutcome({ ok: done });
    } catch (error) {
      setOutcome({ error });
    } finally {
      setPending(null);
      reload();
    }
  };
  const canPause = job.status === 'scheduled' || job.status === 'running';
  const canResume = job.status === 'paused' || job.status === 'failed';
  const button = (label, path, done, enabled, cls = '') => html`
    <button type="button" class=${cls} disabled=${!enabled || pending !== null} onClick=${() => act(label, path, done)}>
      ${pending === label ? `${label}…` : label}
    </button>
  `;
  return html`
    <div class="actions">
      ${button('Run now', 'run', 'Run started', !running, 'primary')}
      ${canResume ? button('Resume', 'resume', 'Resumed', true) : button('Pause', 'pause', 'Paused', canPause)}
      ${failures > 0 ? button('Retry failed rows', 'failures/retry', 'Retry started', !running) : null}
      ${outcome?.ok ? html`<span class="flash" role="status">${outcome.ok}</span>` : null}
    </div>
    ${outcome?.error ? html`<${ErrorBox} error=${outcome.error} />` : null}
  `;
}

function Totals({ t }) {
  if (!t) return null;
  return html`${count(t.rows_read)} rows read · ${count(t.documents_added)} added · ${count(t.documents_updated)} updated ·
    ${' '}${count(t.documents_deleted)} deleted · ${count(t.rows_failed)} rows failed · runs: ${count(t.runs_succeeded)} succeeded,
    ${' '}${count(t.runs_failed)} failed`;
}

function RunRow({ run, job, now }) {
  const hints = runHints(run, job);
  const hasNote = run.error || hints.length > 0;
  return html`
    <tr class=${hasNote ? 'with-note' : ''} data-run=${run.run_id}>
      <td><${When} iso=${run.started_at} now=${now} /></td>
      <td>${run.trigger}</td>
      <td><${Status} value=${run.status} /></td>
      <td class="num">${run.status === 'running' ? duration(now - Date.parse(run.started_at)) : duration(run.duration_ms)}</td>
      <td class="num" data-col="rows_read">${count(run.rows_read)}</td>
      <td class="num">${count(run.documents_added)}</td>
      <td class="num">${count(run.documents_updated)}</td>
      <td class="num">${count(run.documents_unchanged)}</td>
      <td class="num">${count(run.documents_deleted)}</td>
      <td class="num">${count(run.rows_skipped)}</td>
      <td class="num">${count(run.rows_failed)}</td>
      <td class="num">${count(run.embedding_tokens)}</td>
    </tr>
    ${
      hasNote
        ? html`<tr class="note">
          <td colspan="12">
            ${run.error ? html`<div class="run-error"><code>${run.error.code}</code> ${run.error.message}</div>` : null}
            ${hints.map((h) => html`<div class="hint">${h}</div>`)}
          </td>
        </tr>`
        : null
    }
  `;
}

function Failures({ failures }) {
  if (failures.length === 0) return html`<p class="muted">No failed rows.</p>`;
  return html`
    <table class="list failures">
      <thead><tr><th>Row key</th><th>Reason</th><th>Attempts</th><th>First failed</th><th>Last failed</th></tr></thead>
      <tbody>
        ${failures.map(
          (f) => html`<tr key=${f.document_id}>
            <td class="mono">${Array.isArray(f.key) ? f.key.join(', ') : showValue(f.key)}</td>
            <td>${f.reason}</td>
            <td class="num">${count(f.attempts)}</td>
            <td title=${utc(f.first_failed_at)}>${utc(f.first_failed_at)}</td>
            <td title=${utc(f.last_failed_at)}>${utc(f.last_failed_at)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  `;
}

export function JobPage({ name }) {
  useTitle(name);
  const [{ data, error }, reload] = usePolling(() => loadJob(name), [name]);
  const now = useNow();
  if (data === undefined) return error ? html`<${ErrorBox} error=${error} />` : html`<${Loading} />`;
  const { job, runs, failures } = data;
  const current = runs[0]?.status === 'running' ? runs[0] : null;
  return html`
    <section class="job">
      <header class="page-head">
        <p class="crumbs"><a href="#/jobs">Jobs</a> /</p>
        <h1>${job.job_name} <${Status} value=${job.status} /></h1>
        <${Actions} job=${job} running=${current !== null || job.status === 'running'} failures=${failures.length} reload=${reload} />
      </header>
      <${ErrorBox} error=${error} title="Could not refresh" />
      ${
        job.status === 'failed' && job.status_reason
          ? html`<div class="error-box" role="alert"><strong>The job stopped.</strong> ${job.status_reason}
            <div class="hint">Fix the cause, then press Resume.</div></div>`
          : null
      }
      ${
        current
          ? html`<div class="card current-run">
            <h2>Running now <span class="secondary">(${current.trigger}, started <${When} iso=${current.started_at} now=${now} />)</span></h2>
            <${Progress} run=${current} />
          </div>`
          : null
      }
      <div class="card">
        <${Facts}
          rows=${[
            ['Source', html`<span class="mono">${job.source_table}</span>`],
            ['Knowledge base', html`<a href=${`#/kbs/${seg(job.kb_name)}`}>${job.kb_name}</a>`],
            ['Content columns', job.content_columns?.join(', ')],
            ['Metadata columns', job.metadata_columns?.length ? job.metadata_columns.join(', ') : null],
            ['Filter column', job.filter_column],
            ['Interval', job.interval],
            ['Window', `${utc(job.start_time)} → ${utc(job.end_time)}`],
            [
              'Next run',
              job.next_run ? html`<${When} iso=${job.next_run} now=${now} /> (${utc(job.next_run)})` : '–',
            ],
            [
              'Synced up to',
              job.watermark
                ? html`<span class="mono">${showValue(job.watermark.filter_value)}</span>`
                : 'nothing yet',
            ],
            ['Lag', typeof job.lag_seconds === 'number' ? duration(job.lag_seconds * 1000) : null],
            ['Totals', html`<${Totals} t=${job.totals} />`],
            ['Job id', html`<span class="mono">${job.job_id}</span>`],
          ]}
        />
      </div>
      <h2>Run history</h2>
      <div class="card"><${RunChart} runs=${runs} /></div>
      ${
        runs.length === 0
          ? html`<p class="muted">No runs yet.</p>`
          : html`
            <div class="scroll">
              <table class="list runs">
                <thead>
                  <tr>
                    <th>Started</th><th>Trigger</th><th>Status</th><th class="num">Duration</th><th class="num">Rows read</th>
                    <th class="num">Added</th><th class="num">Updated</th><th class="num">Unchanged</th><th class="num">Deleted</th>
                    <th class="num">Skipped</th><th class="num">Failed</th><th class="num">Tokens</th>
                  </tr>
                </thead>
                <tbody>
                  ${runs.map((r) => html`<${RunRow} key=${r.run_id} run=${r} job=${job} now=${now} />`)}
                </tbody>
              </table>
            </div>
          `
      }
      <h2>Failed rows</h2>
      <${Failures} failures=${failures} />
    </section>
  `;
}
