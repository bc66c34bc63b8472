/**
 * A fleet of real processes (SEMANTICS.md "Scale-out"; docs/operations.md "Running a fleet"):
 * three `kbsync serve` processes on ONE store, 50 jobs due at the same second, one of them a
 * 30,000-row backfill. The process running the backfill is SIGKILLed mid-way; another process
 * resumes that same run from its last checkpoint. Every job's first tick runs exactly once across
 * the fleet, runs spread over the processes, and every knowledge base holds exactly one document
 * per source row. A pause sent to a process that does not run the job stops the run where it runs.
 *
 * Run twice: on one SQLite file (WAL) in a shared data dir (processes of one machine), and on
 * PostgreSQL (a fresh database, dropped afterwards), the store of a fleet across machines. The
 * PostgreSQL run skips with the reason when the server or pgvector is missing, except under CI=true. Embeddings come from the
 * fake OpenAI-compatible server in this process, slowed down for the backfill's knowledge base
 * only (told apart by its API key), so the backfill lasts long enough to be killed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { tempDir } from '../helpers/app.js';
import {
  type FakeOpenAIServer,
  type RecordedRequest,
  startFakeOpenAIServer,
} from '../helpers/fake-openai.js';
import { skipUnlessPgvector, withTempPostgresDatabase } from '../helpers/pgvector.js';
import { killAllServers, poll, type ServerProcess, startServer } from '../helpers/process.js';

const PROCESSES = 3;
const SMALL_JOBS = 49;
const SMALL_ROWS = 20;
const BIG_ROWS = 30_000;
const BATCH = 200;
/** Per embedding request of the backfill: 150 requests make it last several seconds. */
const BACKFILL_DELAY_MS = 40;
const TTL_MS = 3_000;
const pgSkip = await skipUnlessPgvector();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const keyOf = (req: RecordedRequest) => String(req.headers.authorization ?? '').replace(/^Bearer /, '');
const isProbe = (req: RecordedRequest) =>
  Array.isArray(req.body?.input) && req.body.input.length === 1 && req.body.input[0] === 'kbsync probe';
/** Whole seconds, no offset (naive = UTC), as the API takes start_time. */
const naive = (ms: number) => new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, '');

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  await killAllServers();
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
});

/** The store every process is given: a shared data dir (SQLite), or a fresh PostgreSQL schema. */
function storeEnv(dataDir: string, storeUrl: string | null): Record<string, string> {
  const env: Record<string, string> = {
    // One key for the fleet: a knowledge base's API key is encrypted by the process that creates it.
    KBSYNC_SECRET_KEY: randomBytes(32).toString('hex'),
    KBSYNC_LEASE_TTL_MS: String(TTL_MS),
    KBSYNC_MAX_CONCURRENT_RUNS: '4',
    KBSYNC_SEARCH_THREADS: '0',
    KBSYNC_MAX_ACTIVE_JOBS: '1000',
    KBSYNC_DATA_DIR: dataDir,
  };
  if (storeUrl !== null) env.KBSYNC_STORE_URL = storeUrl;
  return env;
}

/** The source: `small` (20 rows), `big` (30,000 rows) and `slow` (500 rows), updated_at growing with id. */
function makeSource(dir: string): string {
  const file = path.join(dir, 'source.db');
  const db = new Database(file);
  for (const [table, rows] of [
    ['small', SMALL_ROWS],
    ['big', BIG_ROWS],
    ['slow', 500],
  ] as const) {
    db.exec(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, body TEXT NOT NULL, updated_at TEXT NOT NULL)`);
    const insert = db.prepare(`INSERT INTO ${table} VALUES (?, ?, ?)`);
    db.transaction(() => {
      for (let id = 1; id <= rows; id++)
        insert.run(
          id,
          `${table} row ${id}: a short text about item ${id}`,
          new Date(Date.UTC(2025, 0, 1) + id * 1000).toISOString(),
        );
    })();
  }
  db.close();
  return file;
}

async function ok(
  server: ServerProcess,
  method: string,
  url: string,
  body?: unknown,
  status = 200,
): Promise<any> {
  const res = await server.request(method, url, body);
  assert.equal(
    res.status,
    status,
    `${method} ${url}: ${JSON.stringify(res.body)}\n${server.output().slice(-2000)}`,
  );
  return res.body.data;
}

async function runsOf(server: ServerProcess, job: string): Promise<any[]> {
  return (await ok(server, 'GET', `/jobs/${job}/runs?limit=200`)).runs;
}

/** Every document id of a knowledge base, all pages. */
async function documentIds(server: ServerProcess, kb: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const data: any = await ok(
      server,
      'GET',
      `/knowledge_bases/${kb}/documents?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    ids.push(...data.documents.map((d: any) => d.id));
    cursor = data.next_cursor;
  } while (cursor);
  return ids;
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`a fleet of ${PROCESSES} processes on one ${backend === 'postgres' ? 'PostgreSQL' : 'SQLite'} store`, {
    // Generous: a loaded 2-core machine (two suites at once) embeds 30,000 rows slowly; the test
    // checks what happens, not how fast.
    timeout: 600_000,
    skip: backend === 'postgres' ? pgSkip : false,
  }, () => {
    it('runs every first tick once across the fleet, spreads the runs, and resumes a killed backfill on another process from its checkpoint', async (t) => {
      let storeUrl: string | null = null;
      if (backend === 'postgres') {
        const database = await withTempPostgresDatabase();
        cleanups.push(() => database.close());
        storeUrl = database.url;
      }
      const dataDir = tempDir('kbsync-fleet-');
      const sourceDir = tempDir('kbsync-fleet-src-');
      cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
      cleanups.push(() => fs.rmSync(sourceDir, { recursive: true, force: true }));
      const source = makeSource(sourceDir);
      const fake: FakeOpenAIServer = await startFakeOpenAIServer({
        script: async (req) => {
          if (isProbe(req)) return undefined;
          if (keyOf(req) === 'k-backfill') await sleep(BACKFILL_DELAY_MS);
          if (keyOf(req) === 'k-slow') return 'hang'; // a run of `slow` stays in its first batch until stopped
          return undefined;
        },
      });
      cleanups.push(() => fake.close());

      const env = storeEnv(dataDir, storeUrl);
      // The first process migrates the store; the others start together.
      const servers = [await startServer(dataDir, env, 60_000)];
      servers.push(
        ...(await Promise.all(
          Array.from({ length: PROCESSES - 1 }, () => startServer(dataDir, env, 60_000)),
        )),
      );
      const ids = await Promise.all(
        servers.map(async (s) => (await ok(s, 'GET', '/health')).process_id as string),
      );
      const serverOf = (processId: string) => servers[ids.indexOf(processId)];
      assert.equal(new Set(ids).size, PROCESSES);
      await poll('every process to see the whole fleet', async () => {
        const fleet = (await ok(servers[0]!, 'GET', '/health')).fleet.map((p: any) => p.process_id);
        return ids.every((id) => fleet.includes(id)) ? true : undefined;
      });
      assert.equal((await ok(servers[0]!, 'GET', '/health')).backend, backend);

      // Set up through the first process: the database, 51 knowledge bases, then 50 jobs due at one second.
      const [p0] = servers as [ServerProcess];
      await ok(
        p0,
        'POST',
        '/databases',
        { name: 'src', engine: 'sqlite', parameters: { path: source } },
        201,
      );
      const kbs = [...Array.from({ length: SMALL_JOBS }, (_, i) => `kb${i}`), 'kb_backfill', 'kb_slow'];
      for (let i = 0; i < kbs.length; i += 8) {
        await Promise.all(
          kbs
            .slice(i, i + 8)
            .map((kb) =>
              ok(
                p0,
                'POST',
                '/knowledge_bases',
                {
                  kb_name: kb,
                  embedding: { provider: 'openai', base_url: fake.baseUrl, api_key: `k-${kb.slice(3)}` },
                },
                201,
              ),
            ),
        );
      }
      const job = (name: string, kb: string, table: string, startMs: number) => ({
        job_name: name,
        kb_name: kb,
        source_table: `src.${table}`,
        content_columns: ['body'],
        filter_column: 'updated_at',
        lookback: 0,
        batch_size: BATCH,
        interval: '1 HOUR',
        start_time: naive(startMs),
        end_time: naive(startMs + 24 * 3600_000),
      });
      const startMs = Date.now() + 8_000;
      const jobs = [
        ...Array.from({ length: SMALL_JOBS }, (_, i) => job(`j${i}`, `kb${i}`, 'small', startMs)),
        job('backfill', 'kb_backfill', 'big', startMs),
      ];
      for (let i = 0; i < jobs.length; i += 10)
        await Promise.all(jobs.slice(i, i + 10).map((j) => ok(p0, 'POST', '/jobs/create', j, 201)));
      await ok(p0, 'POST', '/jobs/create', job('slow', 'kb_slow', 'slow', Date.now() + 3600_000), 201);
      assert.ok(
        Date.now() < startMs - 500,
        'the jobs were created before their start time (the machine is very slow: raise the lead time)',
      );

      // The backfill starts on some process; mid-way (a checkpoint down, most rows not) that process is killed.
      const running = await poll(
        'the backfill to be part way through',
        async () => {
          const [run] = await runsOf(p0, 'backfill');
          if (run === undefined) return undefined;
          assert.ok(
            run.rows_read < BIG_ROWS * 0.7,
            `the backfill got too far before the kill (${run.rows_read} rows)`,
          );
          return run.status === 'running' && run.rows_read >= BIG_ROWS * 0.1 ? run : undefined;
        },
        90_000,
        20,
      );
      const victim = serverOf(running.process_id)!;
      const requestsAtKill = fake.requests.length;
      const killedAt = Date.now();
      await victim.kill();
      assert.equal(victim.child.signalCode, 'SIGKILL');
      const alive = servers.filter((s) => s !== victim);
      const [observer] = alive as [ServerProcess];
      const checkpoint = (await ok(observer, 'GET', '/jobs/backfill')).totals.rows_read as number;
      assert.ok(checkpoint >= running.rows_read && checkpoint < BIG_ROWS, `${checkpoint} rows checkpointed`);

      // Another process takes the same run over and finishes it from the checkpoint.
      const finished = await poll(
        'the backfill to be finished by another process',
        async () => {
          const runs = await runsOf(observer, 'backfill');
          assert.equal(
            runs.length,
            1,
            `the same run goes on, no new one: ${JSON.stringify(runs.map((r) => [r.run_id, r.status]))}`,
          );
          assert.notEqual(runs[0].status, 'failed', JSON.stringify(runs[0]));
          return runs[0].status === 'succeeded' ? runs[0] : undefined;
        },
        420_000,
        100,
      );
      const takeoverMs = Date.now() - killedAt;
      assert.equal(finished.run_id, running.run_id);
      assert.notEqual(finished.process_id, running.process_id, 'finished on another process');
      assert.ok(ids.includes(finished.process_id));
      assert.equal(
        finished.rows_read,
        BIG_ROWS,
        'each row read once into the run: the counters went on from the checkpoint',
      );
      assert.equal(
        finished.documents_added + finished.documents_updated + finished.documents_unchanged,
        BIG_ROWS,
      );
      const embeddedAfter = fake.requests
        .slice(requestsAtKill)
        .filter((r) => keyOf(r) === 'k-backfill' && !isProbe(r))
        .reduce((sum, r) => sum + ((r.body?.input as string[] | undefined)?.length ?? 0), 0);
      assert.ok(embeddedAfter < BIG_ROWS, `rows embedded after the takeover: ${embeddedAfter}`);
      // The killed process may have sent its next batch just before the kill and the request reach
      // the fake just after `requestsAtKill` was read (one batch more); the process that takes over
      // may count one batch fewer when it was embedded before the checkpoint it resumes from.
      // A restart from zero would embed ~BIG_ROWS: far outside either bound.
      assert.ok(
        embeddedAfter <= BIG_ROWS - checkpoint + BATCH && embeddedAfter >= BIG_ROWS - checkpoint - BATCH,
        `resumed from the checkpoint (${checkpoint} rows): ${embeddedAfter} embedded after it, within one batch (in flight at the kill)`,
      );

      // Every first tick ran exactly once across the fleet, and the runs were spread.
      const allRuns = await Promise.all(
        jobs.map(async (j) => ({ job: j.job_name, runs: await runsOf(observer, j.job_name) })),
      );
      for (const { job: name, runs } of allRuns) {
        assert.equal(
          runs.length,
          1,
          `${name}: one run for its first tick: ${JSON.stringify(runs.map((r) => [r.run_id, r.process_id, r.status]))}`,
        );
        assert.equal(runs[0].status, 'succeeded', `${name}: ${JSON.stringify(runs[0])}`);
        assert.equal(runs[0].trigger, 'schedule');
      }
      const byProcess = new Map<string, number>();
      for (const { runs } of allRuns)
        byProcess.set(runs[0].process_id, (byProcess.get(runs[0].process_id) ?? 0) + 1);
      assert.ok(byProcess.size > 1, `runs were spread over the processes: ${JSON.stringify([...byProcess])}`);
      t.diagnostic(
        `killed at ${running.rows_read} rows read (${checkpoint} checkpointed); ${embeddedAfter} rows embedded after the kill; backfill finished ${takeoverMs} ms after the kill; first runs per process ${JSON.stringify([...byProcess.values()])}`,
      );

      // Every knowledge base: exactly one document per source row.
      for (let i = 0; i < SMALL_JOBS; i++) {
        const docs = await documentIds(observer, `kb${i}`);
        assert.deepEqual(
          docs.sort(),
          Array.from({ length: SMALL_ROWS }, (_, k) => String(k + 1)).sort(),
          `kb${i}`,
        );
      }
      const big = await documentIds(observer, 'kb_backfill');
      assert.equal(big.length, BIG_ROWS);
      assert.equal(new Set(big).size, BIG_ROWS, 'no duplicate document');
      assert.equal((await ok(observer, 'GET', '/knowledge_bases/kb_backfill')).document_count, BIG_ROWS);

      // The killed process left the fleet; the others are still in it.
      const fleet = (await ok(observer, 'GET', '/health')).fleet.map((p: any) => p.process_id);
      assert.deepEqual(
        fleet.sort(),
        alive.map((s) => ids[servers.indexOf(s)]).sort(),
        'a dead process of this host is not listed',
      );

      // A pause sent to a process that does not run the job stops the run where it runs.
      const owner = alive[0]!;
      const other = alive[1]!;
      const started = await ok(owner, 'POST', '/jobs/slow/run', undefined, 202);
      assert.equal(started.process_id, ids[servers.indexOf(owner)]);
      await poll('the slow run to reach the provider', async () =>
        fake.requests.some((r) => keyOf(r) === 'k-slow' && !isProbe(r)) ? true : undefined,
      );
      const conflict = await other.request('POST', '/jobs/slow/run');
      assert.equal(conflict.status, 409, 'run-now on another process sees the run in progress');
      const pausedAt = Date.now();
      assert.equal((await ok(other, 'POST', '/jobs/slow/pause')).status, 'paused');
      const stopped = await poll(
        'the paused run to stop on its process',
        async () => {
          const [run] = await runsOf(other, 'slow');
          return run.status === 'running' ? undefined : run;
        },
        30_000,
        50,
      );
      assert.equal(stopped.status, 'cancelled', JSON.stringify(stopped));
      assert.match(stopped.error.message, /paused/);
      assert.equal(stopped.process_id, ids[servers.indexOf(owner)]);
      assert.equal((await ok(owner, 'GET', '/jobs/slow')).status, 'paused');
      // The owner reads its runs' jobs about once a second; bound generous for a loaded machine.
      const pauseMs = Date.now() - pausedAt;
      t.diagnostic(`the pause sent to another process stopped the run in ${pauseMs} ms`);
      assert.ok(pauseMs < 15_000, `the pause reached the run in ${pauseMs} ms`);

      await Promise.all(alive.map((s) => s.stop('SIGTERM')));
    });
  });
}
