/**
 * Crash recovery with a real process (SEMANTICS.md, "The watermark advances only after the batch it
 * covers is durably in the knowledge base. A crash … mid-run resumes from the last committed
 * batch: nothing lost, nothing duplicated"): `kbsync serve` is SIGKILLed in the middle of a
 * 20,000-row backfill and restarted on the same data dir. The restarted process sees the run's
 * claim held by a dead process of this host and takes the same run over at once (never `running`
 * forever, no second run): it goes on from the checkpoint, and the knowledge base ends with every
 * row exactly once. Embeddings come from the fake OpenAI-compatible server in this process,
 * slowed down so the backfill takes seconds. (Several live processes: fleet.test.ts.)
 *
 * A second scenario kills the process while jobs are paused mid-run: recovery must not un-pause
 * them, and the job must not keep showing its last run as `running`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type FakeOpenAIServer, startFakeOpenAIServer } from '../helpers/fake-openai.js';
import { isoIn, tempDir } from '../helpers/app.js';
import { killAllServers, poll, type ServerProcess, startServer } from '../helpers/process.js';

const ROWS = 20_000;
const BATCH = 200;
/** Per embedding request: ~100 requests make the backfill last several seconds. */
const DELAY_MS = 40;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const fakes: FakeOpenAIServer[] = [];
const dirs: string[] = [];
after(async () => {
  await killAllServers();
  await Promise.all(fakes.map((f) => f.close()));
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A SQLite source `items(id, body, updated_at)`; updated_at grows with id, so keyset order is id order. */
function makeSource(dir: string, rows: number): string {
  // In the data dir's sources/ folder: the data dir itself is never an allowed SQLite source.
  fs.mkdirSync(path.join(dir, 'sources'), { recursive: true });
  const file = path.join(dir, 'sources', 'source.db');
  const db = new Database(file);
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT NOT NULL, updated_at TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO items VALUES (?, ?, ?)');
  db.transaction(() => {
    for (let id = 1; id <= rows; id++) {
      const ts = new Date(Date.UTC(2025, 0, 1) + id * 1000).toISOString().replace('T', ' ').replace('Z', '');
      insert.run(id, `row ${id}: a short text about item number ${id}`, ts);
    }
  })();
  db.close();
  return file;
}

/** Rows strictly after a keyset position (updated_at, id) in the source. */
function rowsAfter(file: string, watermark: { filter_value: string; key: string[] }): number {
  const db = new Database(file, { readonly: true });
  try {
    const row = db
      .prepare('SELECT COUNT(*) AS n FROM items WHERE updated_at > ? OR (updated_at = ? AND id > ?)')
      .get(watermark.filter_value, watermark.filter_value, Number(watermark.key[0])) as { n: number };
    return row.n;
  } finally {
    db.close();
  }
}

async function ok201(server: ServerProcess, url: string, body: unknown): Promise<any> {
  const res = await server.request('POST', url, body);
  assert.equal(res.status, 201, `${url}: ${JSON.stringify(res.body)}\n${server.output()}`);
  return res.body.data;
}

async function runsOf(server: ServerProcess, job: string): Promise<any[]> {
  const res = await server.request('GET', `/jobs/${job}/runs?limit=200`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return [...res.body.data.runs].reverse();
}

async function getJob(server: ServerProcess, job: string): Promise<any> {
  const res = await server.request('GET', `/jobs/${job}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data;
}

/** Texts the fake embedded from request number `from` on (probes excluded). */
function embeddedSince(fake: FakeOpenAIServer, from: number): number {
  return fake.requests
    .slice(from)
    .map((r) => r.body?.input)
    .filter(
      (input): input is string[] =>
        Array.isArray(input) && !(input.length === 1 && input[0] === 'kbsync probe'),
    )
    .reduce((sum, input) => sum + input.length, 0);
}

describe('SIGKILL in the middle of a large backfill', { timeout: 120_000 }, () => {
  it('the run resumes from its last checkpoint after a restart; every row ends up in the knowledge base exactly once', async () => {
    const dataDir = tempDir('kbsync-crash-');
    dirs.push(dataDir);
    const source = makeSource(dataDir, ROWS);
    const fake = await startFakeOpenAIServer({
      script: async () => {
        await sleep(DELAY_MS);
        return undefined;
      },
    });
    fakes.push(fake);

    // 1. Start the server, set up the job, start the backfill.
    const first = await startServer(dataDir);
    await ok201(first, '/databases', { name: 'src', engine: 'sqlite', parameters: { path: source } });
    await ok201(first, '/knowledge_bases', {
      kb_name: 'kb',
      embedding: { provider: 'openai', base_url: fake.baseUrl, api_key: 'k' },
    });
    await ok201(first, '/jobs/create', {
      job_name: 'backfill',
      kb_name: 'kb',
      source_table: 'src.items',
      content_columns: ['body'],
      filter_column: 'updated_at',
      lookback: 0,
      batch_size: BATCH,
      interval: '1 HOUR',
      start_time: isoIn(60),
      end_time: isoIn(60 * 24),
    });
    const started = await first.request('POST', '/jobs/backfill/run');
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const killedRunId: string = started.body.data.run_id;

    // 2. Mid-backfill (a checkpoint is down, most rows are not), kill -9.
    const mid = await poll(
      'the backfill to be part way through',
      async () => {
        const job = await getJob(first, 'backfill');
        assert.ok(
          job.totals.rows_read < ROWS * 0.8,
          `the backfill got too far before the kill (${job.totals.rows_read} rows): ${first.output()}`,
        );
        return job.watermark !== null && job.totals.rows_read >= ROWS * 0.1 ? job : undefined;
      },
      60_000,
      20,
    );
    await first.kill();
    assert.equal(first.child.signalCode, 'SIGKILL');
    assert.ok(mid.totals.rows_read < ROWS);

    // 3. What the kill left on disk, seen by a server that does not run the scheduler.
    const inspect = await startServer(dataDir, { KBSYNC_SCHEDULER: 'off' });
    const left = await getJob(inspect, 'backfill');
    const leftRuns = await runsOf(inspect, 'backfill');
    await inspect.stop('SIGTERM');
    assert.equal(left.status, 'running', 'the kill left the job mid-run');
    assert.deepEqual(
      leftRuns.map((r) => [r.run_id, r.status]),
      [[killedRunId, 'running']],
    );
    const checkpoint = left.watermark;
    assert.ok(checkpoint, 'a checkpoint was committed before the kill');
    assert.ok(
      left.totals.rows_read >= mid.totals.rows_read && left.totals.rows_read < ROWS,
      JSON.stringify(left.totals),
    );
    const remaining = rowsAfter(source, checkpoint);
    assert.equal(remaining, ROWS - Number(checkpoint.key[0]));
    assert.ok(remaining > 0 && remaining < ROWS);

    // 4. Restart with the scheduler: the killed run is taken over at once and finishes the backfill.
    const requestsBeforeRestart = fake.requests.length;
    const second = await startServer(dataDir);
    const runs = await poll(
      'the killed run to be taken over and finished',
      async () => {
        const list = await runsOf(second, 'backfill');
        const run = list.find((r) => r.run_id === killedRunId);
        if (run?.status === 'failed' || run?.status === 'cancelled')
          assert.fail(`the resumed run ended ${run.status}: ${JSON.stringify(run)}\n${second.output()}`);
        return run?.status === 'succeeded' ? list : undefined;
      },
      60_000,
      100,
    );

    assert.equal(
      runs.length,
      1,
      `the same run goes on, no catch_up run and no burst: ${JSON.stringify(runs.map((r) => [r.trigger, r.status]))}`,
    );
    const [resumed] = runs;
    assert.equal(resumed.trigger, 'manual', 'still the run the user started');
    const secondId = (await second.request('GET', '/health')).body.data.process_id;
    assert.equal(resumed.process_id, secondId, 'finished by the restarted process');
    assert.ok(resumed.finished_at);
    const totals = (await second.request('GET', '/jobs/backfill')).body.data.totals;
    assert.equal(totals.runs_failed, 0, `nothing failed: ${JSON.stringify(totals)}`);
    assert.equal(totals.runs_succeeded, 1, JSON.stringify(totals));
    assert.equal(totals.rows_read, ROWS, 'no row counted twice');

    assert.equal(resumed.watermark_start, null, 'the run keeps where it first started');
    assert.equal(resumed.rows_read, ROWS, 'its counters went on from the checkpoint: each row read once into the run');
    assert.equal(resumed.watermark_end.key[0], String(ROWS));
    // A batch the kill caught between its write and its checkpoint is found unchanged, not re-embedded.
    assert.equal(resumed.documents_added + resumed.documents_updated + resumed.documents_unchanged, ROWS);
    assert.ok(
      resumed.documents_unchanged <= BATCH,
      `at most the batch in flight is re-read: ${resumed.documents_unchanged}`,
    );
    const embeddedAfter = embeddedSince(fake, requestsBeforeRestart);
    assert.equal(
      embeddedAfter,
      resumed.documents_added + resumed.documents_updated - (left.totals.documents_added + left.totals.documents_updated),
      'nothing embedded twice after the restart',
    );
    assert.ok(embeddedAfter <= remaining && embeddedAfter >= remaining - BATCH, `read from the checkpoint on: ${embeddedAfter} of ${remaining}`);

    const job = await getJob(second, 'backfill');
    assert.equal(job.status, 'scheduled');
    assert.deepEqual(job.watermark, resumed.watermark_end);

    // 5. The knowledge base: every row exactly once.
    const kb = await second.request('GET', '/knowledge_bases/kb');
    assert.equal(kb.body.data.document_count, ROWS);
    const ids = new Set<string>();
    let total = 0;
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { status: number; body: any } = await second.request(
        'GET',
        `/knowledge_bases/kb/documents?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      for (const doc of res.body.data.documents) ids.add(doc.id);
      total += res.body.data.documents.length;
      cursor = res.body.data.next_cursor;
      assert.ok(++pages <= ROWS / 200 + 2, 'paging ends');
    } while (cursor);
    assert.equal(total, ROWS);
    assert.equal(ids.size, ROWS, 'no duplicate document');
    for (let id = 1; id <= ROWS; id += 997)
      assert.ok(ids.has(String(id)), `row ${id} is in the knowledge base`);
    assert.ok(ids.has(String(ROWS)));

    await second.stop('SIGTERM');
  });
});

describe('SIGKILL while jobs are paused mid-run', { timeout: 120_000 }, () => {
  let server: ServerProcess;
  let pausedMidRun: { job: any; runs: any[] };
  let manualOfPaused: { job: any; runs: any[] };

  before(async () => {
    const dataDir = tempDir('kbsync-crash-paused-');
    dirs.push(dataDir);
    const source = makeSource(dataDir, 500);
    let stall = true;
    let stalled = 0;
    const fake = await startFakeOpenAIServer({
      script: async (req) => {
        const input = req.body?.input;
        const probe = Array.isArray(input) && input.length === 1 && input[0] === 'kbsync probe';
        if (!stall || probe) return undefined;
        stalled++;
        return 'hang'; // the run stays inside its first batch until the process dies
      },
    });
    fakes.push(fake);

    const first = await startServer(dataDir);
    await ok201(first, '/databases', { name: 'src', engine: 'sqlite', parameters: { path: source } });
    for (const kb of ['kb_a', 'kb_b']) {
      await ok201(first, '/knowledge_bases', {
        kb_name: kb,
        embedding: { provider: 'openai', base_url: fake.baseUrl, api_key: 'k' },
      });
    }
    const job = (name: string, kb: string) => ({
      job_name: name,
      kb_name: kb,
      source_table: 'src.items',
      content_columns: ['body'],
      filter_column: 'updated_at',
      lookback: 0,
      batch_size: 100,
      interval: '1 HOUR',
      start_time: isoIn(60),
      end_time: isoIn(60 * 24),
    });
    await ok201(first, '/jobs/create', job('paused_mid_run', 'kb_a'));
    await ok201(first, '/jobs/create', job('manual_of_paused', 'kb_b'));

    // A: a run starts, then the job is paused while the run is stuck in a batch: the pause stops
    // it at once (the provider's request is aborted), before the process is killed.
    assert.equal((await first.request('POST', '/jobs/paused_mid_run/run')).status, 202);
    await poll(
      'the first run to reach the provider',
      async () => (stalled >= 1 ? true : undefined),
      30_000,
      20,
    );
    assert.equal((await first.request('POST', '/jobs/paused_mid_run/pause')).body.data.status, 'paused');
    // B: the job is paused, then run by hand (allowed: a manual run of a paused job).
    assert.equal((await first.request('POST', '/jobs/manual_of_paused/pause')).body.data.status, 'paused');
    assert.equal((await first.request('POST', '/jobs/manual_of_paused/run')).status, 202);
    await poll(
      'the second run to reach the provider',
      async () => (stalled >= 2 ? true : undefined),
      30_000,
      20,
    );
    await poll(
      'the paused run to end',
      async () => ((await getJob(first, 'paused_mid_run')).last_run.status === 'cancelled' ? true : undefined),
      30_000,
      20,
    );
    assert.equal((await getJob(first, 'manual_of_paused')).status, 'running');

    await first.kill();
    stall = false;

    server = await startServer(dataDir);
    // Recovery happens as the scheduler starts; wait until no run is left running, then a little
    // longer so a (wrong) catch_up run would show.
    await poll(
      'the interrupted runs to be closed',
      async () => {
        const runs = [
          ...(await runsOf(server, 'paused_mid_run')),
          ...(await runsOf(server, 'manual_of_paused')),
        ];
        return runs.length > 0 && runs.every((r) => r.status !== 'running') ? true : undefined;
      },
      30_000,
      50,
    );
    await sleep(1500);
    pausedMidRun = {
      job: await getJob(server, 'paused_mid_run'),
      runs: await runsOf(server, 'paused_mid_run'),
    };
    manualOfPaused = {
      job: await getJob(server, 'manual_of_paused'),
      runs: await runsOf(server, 'manual_of_paused'),
    };
    await server.stop('SIGTERM');
  });

  it('a job paused during a run stuck in a batch stays paused; its run, stopped by the pause, stays cancelled', () => {
    assert.equal(pausedMidRun.job.status, 'paused');
    assert.equal(pausedMidRun.job.next_run, null);
    assert.deepEqual(
      pausedMidRun.runs.map((r) => [r.trigger, r.status, r.error?.code]),
      [['manual', 'cancelled', 'CANCELLED']],
    );
  });

  it("the job's last_run does not stay `running` after recovery: the killed manual run is resumed and finished", () => {
    assert.equal(
      manualOfPaused.job.last_run.status,
      'succeeded',
      `GET /jobs shows the interrupted run as still running: ${JSON.stringify(manualOfPaused.job.last_run)}`,
    );
  });

  it('a paused job whose manual run was killed stays paused after recovery (no catch_up run)', () => {
    assert.deepEqual(
      manualOfPaused.runs.map((r) => [r.trigger, r.status, r.error?.code ?? null, r.rows_read]),
      [['manual', 'succeeded', null, 500]],
      'the user paused this job: recovery finishes the manual run and does not schedule it',
    );
    assert.equal(manualOfPaused.job.status, 'paused');
    assert.equal(manualOfPaused.job.next_run, null);
  });
});
