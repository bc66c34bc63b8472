/** The jobs page: every job with its status, next run, last run and, while it runs, its progress. */
import { api, listAll, seg } from '../api.js';
import {
  ErrorBox,
  html,
  Loading,
  Progress,
  Status,
  usePolling,
  useNow,
  useTitle,
  When,
} from '../components.js';
import { duration, isBusy } from '../model.js';

/** The jobs, and for each running one its run (the run carries `progress` and rows read). */
async function loadJobs() {
  const jobs = await listAll('jobs', 'jobs');
  const runs = {};
  await Promise.all(
    jobs
      .filter((j) => isBusy(j) && j.last_run)
      .map(async (j) => {
        try {
          runs[j.job_id] = await api('GET', `jobs/${seg(j.job_id)}/runs/${seg(j.last_run.run_id)}`);
        } catch {
          // The run ended and was pruned, or the job was deleted between the two answers: the next
          // poll shows what is true then.
        }
      }),
  );
  return { jobs, runs, busy: jobs.some(isBusy) };
}

function LastRun({ job, run, now }) {
  const last = job.last_run;
  if (!last) return html`<span class="muted">never run</span>`;
  if (last.status === 'running') {
    return html`<${Progress} run=${run ?? { ...last, progress: job.progress ?? last.progress ?? null }} />`;
  }
  const took = last.finished_at ? Date.parse(last.finished_at) - Date.parse(last.started_at) : null;
  return html`
    <${Status} value=${last.status} />
    <span class="secondary"><${When} iso=${last.finished_at ?? last.started_at} now=${now} />${took === null ? '' : ` · ${duration(took)}`}</span>
    ${last.error ? html`<div class="run-error" title=${last.error.message}><code>${last.error.code}</code> ${last.error.message}</div>` : null}
  `;
}

export function JobsPage() {
  useTitle('Jobs');
  const [{ data, error }] = usePolling(loadJobs, []);
  const now = useNow();
  if (data === undefined) return error ? html`<${ErrorBox} error=${error} />` : html`<${Loading} />`;
  const { jobs, runs } = data;
  const by = (s) => jobs.filter((j) => j.status === s).length;
  return html`
    <section>
      <header class="page-head">
        <h1>Jobs</h1>
        <p class="secondary">
          ${jobs.length} jobs · ${by('running')} running · ${by('scheduled')} scheduled · ${by('paused')} paused ·
          ${' '}${by('failed')} failed
        </p>
      </header>
      <${ErrorBox} error=${error} title="Could not refresh" />
      ${
        jobs.length === 0
          ? html`<div class="empty">
            <p>No jobs yet.</p>
            <p class="secondary">
              Create one with <code>POST /jobs/create</code> (see <a href="docs">the API docs</a>) or
              <code>kbsync jobs create --file job.json</code>.
            </p>
          </div>`
          : html`
            <table class="list jobs">
              <thead>
                <tr><th>Job</th><th>Status</th><th>Source → knowledge base</th><th>Interval</th><th>Next run</th><th>Last run</th></tr>
              </thead>
              <tbody>
                ${jobs.map(
                  (j) => html`
                    <tr key=${j.job_id} data-job=${j.job_name}>
                      <td><a href=${`#/jobs/${seg(j.job_name)}`}>${j.job_name}</a></td>
                      <td title=${j.status_reason ?? ''}><${Status} value=${j.status} /></td>
                      <td><span class="mono">${j.source_table}</span> → <a href=${`#/kbs/${seg(j.kb_name)}`}>${j.kb_name}</a></td>
                      <td>${j.interval}</td>
                      <td><${When} iso=${j.next_run} now=${now} /></td>
                      <td class="last-run"><${LastRun} job=${j} run=${runs[j.job_id]} now=${now} /></td>
                    </tr>
                  `,
                )}
              </tbody>
            </table>
          `
      }
    </section>
  `;
}
