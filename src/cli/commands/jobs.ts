/** `kbsync jobs …`: list, get, create --file, pause, resume, run [--wait], delete, runs, failures. */
import fs from 'node:fs';
import { type Command, Option } from 'commander';
import type { Failure, Job, Page, Run } from '../api-types.js';
import { act, type Context } from '../context.js';
import { ApiError, RunFailedError, UsageError } from '../errors.js';
import { count, duration, table, truncate } from '../format.js';
import { seg } from '../http.js';
import { waitForRun } from '../progress.js';
import { runSummary, showJob, warnings } from './jobs-view.js';
import { positiveInt } from './options.js';

const STATUSES = ['scheduled', 'running', 'paused', 'completed', 'failed'];

export function jobsCommand(program: Command): void {
  const jobs = program.command('jobs').description('sync jobs: list, create, run, pause, inspect');

  jobs
    .command('list')
    .description('list jobs (all pages)')
    .addOption(new Option('--status <status>', 'only jobs in this status').choices(STATUSES))
    .option('--kb <kb>', 'only jobs that write into this knowledge base')
    .option('--limit <n>', 'show at most n jobs', positiveInt)
    .action(
      act<{ status?: string; kb?: string; limit?: number }>(async (ctx, _args, o) => {
        const { items, next } = await allPages<Job>(
          ctx,
          '/jobs',
          'jobs',
          { status: o.status, kb_name: o.kb },
          o.limit,
        );
        ctx.emit({ jobs: items, next_cursor: next }, () =>
          items.length === 0
            ? 'no jobs (create one: kbsync jobs create --file job.json)'
            : table(
                ['NAME', 'STATUS', 'SOURCE', 'KB', 'INTERVAL', 'NEXT RUN', 'LAST RUN', 'ROWS'],
                items.map((j) => [
                  j.job_name,
                  j.status,
                  j.source_table,
                  j.kb_name,
                  j.interval,
                  j.next_run,
                  j.last_run
                    ? `${j.last_run.status} ${j.last_run.finished_at ?? j.last_run.started_at}`
                    : null,
                  count(j.totals?.rows_read ?? null),
                ]),
              ),
        );
      }),
    );

  jobs
    .command('get')
    .description('one job: configuration, state, watermark, totals')
    .argument('<job>', 'job name or id')
    .action(
      act(async (ctx, [job]) => {
        const data = await ctx.client.get<Job>(`/jobs/${seg(job!)}`);
        ctx.emit(data, () => showJob(data));
      }),
    );

  jobs
    .command('create')
    .description('create a job from a JSON file with the POST /jobs/create body (- reads stdin)')
    .requiredOption('-f, --file <file>', 'JSON file with the job (the body of POST /jobs/create)')
    .addHelpText(
      'after',
      `
Example job.json (the Jobs API's body):
  {"job_name": "sync_orders", "source_table": "orders_db.orders", "kb_name": "orders_kb",
   "content_columns": ["product", "description"], "filter_column": "created_at",
   "interval": "10 MINUTES", "start_time": "2030-06-19T18:00:00", "end_time": "2030-06-20T18:00:00"}`,
    )
    .action(
      act<{ file: string }>(async (ctx, _args, o) => {
        const data = await ctx.client.post<Job>('/jobs/create', readJsonFile(o.file));
        ctx.emit(data, () => {
          const next = data.next_run ? `next run ${data.next_run}` : 'no next run';
          return [
            `job ${data.job_name} created (${data.job_id}): ${data.status}, ${next}`,
            ...warnings(data),
          ].join('\n');
        });
      }),
    );

  for (const [name, verb, describe] of [
    ['pause', 'paused', 'pause a job (keeps its watermark; a run in progress stops at its next batch)'],
    ['resume', 'resumed', 'resume a paused or failed job on its schedule'],
  ] as const) {
    jobs
      .command(name)
      .description(describe)
      .argument('<job>', 'job name or id')
      .action(
        act(async (ctx, [job]) => {
          const data = await ctx.client.post<Job>(`/jobs/${seg(job!)}/${name}`);
          ctx.emit(data, () =>
            [
              `job ${data.job_name} ${verb}: ${data.status}${data.next_run ? `, next run ${data.next_run}` : ''}`,
              ...warnings(data),
            ].join('\n'),
          );
        }),
      );
  }

  jobs
    .command('run')
    .description('run a job now; --wait follows it with a progress bar and exits 4 if it fails')
    .argument('<job>', 'job name or id')
    .option('-w, --wait', 'wait for the run to end, showing its progress')
    .option('--poll-ms <ms>', 'how often --wait asks for the run state', positiveInt, 500)
    .action(
      act<{ wait?: boolean; pollMs: number }>(async (ctx, [job], o) => {
        let started: Run;
        let following = false;
        try {
          started = await ctx.client.post<Run>(`/jobs/${seg(job!)}/run`);
        } catch (err) {
          // With --wait, a run already in progress is what the user wants to see end: follow it.
          const running =
            o.wait && err instanceof ApiError && err.status === 409 ? await runInProgress(ctx, job!) : null;
          if (running === null) throw err;
          ctx.note(`job ${job} is already running (run ${running.run_id}, ${running.trigger}); following it`);
          started = running;
          following = true;
        }
        if (!o.wait) {
          ctx.emit(
            started,
            () => `run ${started.run_id} started for job ${job}; follow it: kbsync jobs runs ${job}`,
          );
          return;
        }
        if (!following) ctx.note(`run ${started.run_id} started for job ${job}`);
        const run = await waitForRun(ctx, job!, started.run_id, { pollMs: o.pollMs });
        ctx.emit(run, () => runSummary(run));
        if (run.status !== 'succeeded') throw await runFailure(ctx, job!, run);
      }),
    );

  jobs
    .command('delete')
    .description('delete a job (frees its name; the knowledge base keeps what was synced)')
    .argument('<job>', 'job name or id')
    .action(
      act(async (ctx, [job]) => {
        const data = await ctx.client.delete<{ job_id: string; job_name: string }>(`/jobs/${seg(job!)}`);
        ctx.emit(data, () => `job ${data.job_name} deleted (${data.job_id})`);
      }),
    );

  jobs
    .command('runs')
    .description('run history of a job, newest first')
    .argument('<job>', 'job name or id')
    .option('--limit <n>', 'show at most n runs', positiveInt, 20)
    .action(
      act<{ limit: number }>(async (ctx, [job], o) => {
        const { items, next } = await allPages<Run>(ctx, `/jobs/${seg(job!)}/runs`, 'runs', {}, o.limit);
        ctx.emit({ runs: items, next_cursor: next }, () =>
          items.length === 0
            ? `job ${job} has not run yet`
            : table(
                [
                  'RUN',
                  'TRIGGER',
                  'STATUS',
                  'STARTED',
                  'DURATION',
                  'ROWS',
                  'ADDED',
                  'UPDATED',
                  'DELETED',
                  'FAILED',
                  'ERROR',
                ],
                items.map((r) => [
                  r.run_id,
                  r.trigger,
                  r.status,
                  r.started_at,
                  duration(r.duration_ms),
                  count(r.rows_read),
                  count(r.documents_added),
                  count(r.documents_updated),
                  count(r.documents_deleted),
                  count(r.rows_failed),
                  r.error ? truncate(`${r.error.code}: ${r.error.message}`, 80) : null,
                ]),
              ),
        );
      }),
    );

  jobs
    .command('failures')
    .description('rows of a job that could not be synced (retry: POST /jobs/{job}/failures/retry)')
    .argument('<job>', 'job name or id')
    .option('--limit <n>', 'show at most n rows', positiveInt, 50)
    .action(
      act<{ limit: number }>(async (ctx, [job], o) => {
        const { items, next } = await allPages<Failure>(
          ctx,
          `/jobs/${seg(job!)}/failures`,
          'failures',
          {},
          o.limit,
        );
        ctx.emit({ failures: items, next_cursor: next }, () =>
          items.length === 0
            ? `job ${job} has no failed rows`
            : table(
                ['DOCUMENT', 'KEY', 'ATTEMPTS', 'FIRST FAILED', 'REASON'],
                items.map((f) => [
                  f.document_id,
                  JSON.stringify(f.key),
                  f.attempts,
                  f.first_failed_at,
                  truncate(f.reason, 100),
                ]),
              ),
        );
      }),
    );
}

/** Follows next_cursor until the end or `limit` items; `next` is the cursor left, if cut. */
async function allPages<T>(
  ctx: Context,
  path: string,
  key: string,
  query: Record<string, string | undefined>,
  limit: number | undefined,
): Promise<{ items: T[]; next: string | null }> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (;;) {
    const want = limit === undefined ? 200 : Math.min(200, limit - items.length);
    const page = await ctx.client.get<Page & Record<string, T[]>>(path, { ...query, limit: want, cursor });
    items.push(...(page[key] ?? []));
    if (page.next_cursor === null || page.next_cursor === undefined) return { items, next: null };
    if (limit !== undefined && items.length >= limit) return { items, next: page.next_cursor };
    cursor = page.next_cursor;
  }
}

/** The job's newest run if it is still running, else null. */
async function runInProgress(ctx: Context, job: string): Promise<Run | null> {
  const page = await ctx.client.get<{ runs: Run[] }>(`/jobs/${seg(job)}/runs`, { limit: 1 });
  const newest = page.runs[0];
  return newest?.status === 'running' ? newest : null;
}

function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file === '-' ? 'stdin' : file}`, [(err as Error).message]);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file === '-' ? 'stdin' : file} is not valid JSON`, [(err as Error).message]);
  }
}

/** The run's error and what to do next: a failed job says what to fix; a transient failure retries by itself. */
async function runFailure(ctx: Context, job: string, run: Run): Promise<RunFailedError> {
  const hints: string[] = [];
  const after = await ctx.client.get<Job>(`/jobs/${seg(job)}`).catch(() => null);
  if (run.status === 'cancelled') {
    hints.push('the run was cancelled: the job was paused or deleted, or the server shut down');
  } else if (after?.status === 'failed') {
    // The reason is often the run's own message; say it once.
    const reason =
      after.status_reason && after.status_reason !== run.error?.message ? `: ${after.status_reason}` : '';
    hints.push(`job ${after.job_name} is now failed${reason}`);
    hints.push(`fix the cause, then: kbsync jobs resume ${job}`);
  } else if (after) {
    hints.push(
      `job ${after.job_name} stays ${after.status}: its next tick retries from the last checkpoint, or run it again: kbsync jobs run ${job} --wait`,
    );
  }
  if (run.rows_failed > 0)
    hints.push(`${run.rows_failed} rows could not be synced: kbsync jobs failures ${job}`);
  hints.push(`run history: kbsync jobs runs ${job}`);
  const code = run.error?.code ?? (run.status === 'cancelled' ? 'RUN_CANCELLED' : 'RUN_FAILED');
  const reason = run.error?.message ?? run.status;
  return new RunFailedError(code, `run ${run.run_id} ${run.status}: ${reason}`, hints);
}
