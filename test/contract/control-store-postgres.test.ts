/**
 * Runs the ControlStore contract against the PostgreSQL adapter, each test in a fresh schema of one
 * temporary database (the schema dropped after the test, the database after the file). Then what
 * only this adapter can show: five processes migrating one fresh schema at once, the active-job
 * limit under concurrent re-activations from two pools (write skew), lease exclusivity between two
 * pools, the statement timeout, text only `json` keeps, and the due-jobs index.
 *
 * Skips with the reason when PostgreSQL or pgvector is missing, except under CI=true (fails).
 */
import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import { newId } from '../../src/core/ids.js';
import { ActiveJobLimitError, type ControlStore, EMPTY_TOTALS, type JobRecord, type JobStatus } from '../../src/store/port.js';
import { DUE_JOBS_SQL, openPostgresControlStore, PostgresControlStore } from '../../src/store/postgres/control-store.js';
import { applyMigrations, MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { openPostgres, type PostgresDatabase } from '../../src/store/postgres/open.js';
import { skipUnlessPgvector, type TempDatabase, withTempPostgresDatabase } from '../helpers/pgvector.js';
import { controlStoreContract, dbRecord, kbRecord, rebuildRecord } from './control-store.contract.js';

const skip = await skipUnlessPgvector();

/** One database for the file (created on first use): a fresh schema per store is much cheaper than a database. */
let database: Promise<TempDatabase> | null = null;
const sharedDatabase = () => (database ??= withTempPostgresDatabase());
after(async () => {
  if (database) await (await database).close();
});

let schemas = 0;
const freshSchema = () => `control_${process.pid}_${++schemas}`;

async function dropSchema(schema: string): Promise<void> {
  await (await sharedDatabase()).exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
}

async function tempStore() {
  const db = await sharedDatabase();
  const schema = freshSchema();
  const store = await openPostgresControlStore(db.url, schema, { max: 4, statementTimeoutMs: 30_000 });
  return {
    store,
    close: async () => {
      await store.close();
      await dropSchema(schema);
    },
  };
}

const T0 = Date.UTC(2031, 0, 15, 8, 30, 0);

function job(accountId: string, name: string, over: Partial<JobRecord> = {}): JobRecord {
  return {
    id: newId('job'),
    accountId,
    name,
    databaseName: 'db',
    tableSchema: null,
    tableName: 'items',
    sourceTable: 'db.items',
    kbName: 'kb',
    contentColumns: ['body'],
    metadataColumns: [],
    filterColumn: 'updated_at',
    keyColumns: ['id'],
    interval: '1h',
    intervalMs: 3_600_000,
    startMs: T0,
    endMs: T0 + 86_400_000,
    backfill: true,
    lookbackSeconds: 0,
    batchSize: 100,
    status: 'scheduled',
    statusBeforeRun: null,
    statusReason: null,
    nextRunMs: T0,
    watermark: null,
    started: false,
    totals: { ...EMPTY_TOTALS },
    lastRun: null,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

async function registerTargets(store: ControlStore, accountId: string): Promise<void> {
  assert.equal(await store.insertKnowledgeBase(kbRecord(accountId, 'kb')), 'ok');
  assert.equal(await store.insertDatabase(dbRecord(accountId, 'db')), 'ok');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('PostgreSQL control store', { skip }, () => {
  controlStoreContract('postgres', tempStore);

  describe('PostgresControlStore (PostgreSQL specifics)', () => {
    /** Pools and schemas opened by the current test; closed and dropped after it whatever happened. */
    const cleanup: Array<() => Promise<void>> = [];
    afterEach(async () => {
      while (cleanup.length > 0) await cleanup.pop()!();
    });

    /** `n` stores on one fresh, migrated schema, each on its own pool (as `n` processes would be). */
    async function storesOnOneSchema(
      n: number,
      options: { statementTimeoutMs?: number } = {},
    ): Promise<{ stores: PostgresControlStore[]; schema: string }> {
      const dbs = await poolsOnFreshSchema(n, options);
      await applyMigrations(dbs[0]!);
      return { stores: dbs.map((db) => new PostgresControlStore(db)), schema: dbs[0]!.schema };
    }

    async function poolsOnFreshSchema(n: number, options: { statementTimeoutMs?: number } = {}): Promise<PostgresDatabase[]> {
      const { url } = await sharedDatabase();
      const schema = freshSchema();
      cleanup.unshift(() => dropSchema(schema)); // dropped last, after every pool on it is closed
      const dbs = Array.from({ length: n }, () => openPostgres(url, schema, { max: 3, ...options }));
      cleanup.push(async () => void (await Promise.all(dbs.map((db) => db.close()))));
      return dbs;
    }

    it('five processes opening one fresh schema at once migrate it once, and see each other’s writes', async () => {
      const dbs = await poolsOnFreshSchema(5);
      const applied = await Promise.all(dbs.map((db) => applyMigrations(db)));
      // One applied every migration, the other four waited on the lock and found nothing to do.
      assert.deepEqual(
        applied.map((a) => a.length).sort(),
        [0, 0, 0, 0, MIGRATIONS.length],
      );
      assert.deepEqual(
        applied.flat(),
        MIGRATIONS.map((m) => m.id),
      );
      const { rows } = await dbs[0]!.pool.query('SELECT id, count(*)::int AS n FROM schema_migrations GROUP BY id ORDER BY id');
      assert.deepEqual(
        rows,
        MIGRATIONS.map((m) => ({ id: m.id, n: 1 })),
      );
      const stores = dbs.map((db) => new PostgresControlStore(db));
      assert.deepEqual(
        (await stores[4]!.listAccounts()).map((a) => a.id),
        ['default'],
        'the default account was inserted once',
      );
      await registerTargets(stores[1]!, 'acct');
      const j = job('acct', 'shared');
      assert.deepEqual(await stores[2]!.insertJob(j, 5), { ok: true });
      assert.deepEqual(await stores[3]!.getJob('acct', 'shared'), j);
      assert.deepEqual(await stores[0]!.insertJob(job('acct', 'shared'), 5), { ok: false, reason: 'duplicate' });
    });

    it('re-activations and inserts racing from two pools never exceed the active-job limit (write skew)', { timeout: 120_000 }, async () => {
      const { stores } = await storesOnOneSchema(2);
      const LIMIT = 3;
      const ROUNDS = 40;
      for (let round = 0; round < ROUNDS; round++) {
        // A fresh account per round: two active jobs, four failed ones, one slot left.
        const account = `acct_${round}`;
        await registerTargets(stores[0]!, account);
        for (let i = 0; i < 2; i++) assert.deepEqual(await stores[0]!.insertJob(job(account, `live_${i}`), LIMIT), { ok: true });
        const dead: JobRecord[] = [];
        for (let i = 0; i < 4; i++) {
          const d = job(account, `dead_${i}`, { status: 'failed', nextRunMs: null });
          assert.deepEqual(await stores[0]!.insertJob(d, LIMIT), { ok: true });
          dead.push(d);
        }
        // Four re-activations and two inserts of active jobs, spread over both pools, each after
        // a random delay so that they interleave differently every round.
        const attempts: Array<Promise<'ok' | 'limit'>> = [
          ...dead.map(async (d, i) => {
            await sleep(Math.random() * 4);
            try {
              await stores[i % 2]!.mutateJob(d.id, (cur) => ({ ...cur, status: 'scheduled', nextRunMs: T0 }), undefined, {
                maxActive: LIMIT,
              });
              return 'ok' as const;
            } catch (err) {
              if (err instanceof ActiveJobLimitError) return 'limit' as const;
              throw err;
            }
          }),
          ...[0, 1].map(async (i) => {
            await sleep(Math.random() * 4);
            const outcome = await stores[i]!.insertJob(job(account, `new_${i}`), LIMIT);
            assert.ok(outcome.ok || outcome.reason === 'limit', JSON.stringify(outcome));
            return outcome.ok ? ('ok' as const) : ('limit' as const);
          }),
        ];
        const outcomes = await Promise.all(attempts);
        assert.equal(outcomes.filter((o) => o === 'ok').length, 1, `round ${round}: ${outcomes.join(', ')}`);
        assert.equal(await stores[1]!.countActiveJobs(account), LIMIT, `round ${round}`);
        // What the database holds, not what the store answers: the statuses of the rows.
        const statuses = (await stores[0]!.listJobs(account, { limit: 100, cursor: null })).items.map((j) => j.status);
        assert.equal(statuses.filter((s: JobStatus) => ['scheduled', 'running', 'paused'].includes(s)).length, LIMIT);
      }
    });

    it('rebuild claims and starts racing from four pools: one claim wins, one start wins (every round)', { timeout: 120_000 }, async () => {
      const { stores } = await storesOnOneSchema(4);
      for (let round = 0; round < 20; round++) {
        const name = `kb_${round}`;
        assert.equal(await stores[0]!.insertKnowledgeBase(kbRecord('acct', name)), 'ok');
        const starts = await Promise.all(
          stores.map(async (s) => {
            await sleep(Math.random() * 3);
            return s.startRebuild('acct', name, rebuildRecord());
          }),
        );
        assert.deepEqual(starts.filter((o) => o === 'ok').length, 1, `round ${round}: ${starts.join(', ')}`);
        // Three claims per pool, from twelve owners, at one instant.
        const claims = await Promise.all(
          Array.from({ length: 12 }, async (_, i) => {
            await sleep(Math.random() * 3);
            return stores[i % 4]!.claimRebuild(`proc_${round}_${i}`, T0 + round, 30_000);
          }),
        );
        const winners = claims.filter((c) => c !== null);
        assert.equal(winners.length, 1, `round ${round}: ${winners.length} claims won`);
        const stored = await stores[3]!.getKnowledgeBase('acct', name);
        assert.equal(stored?.rebuild?.owner, winners[0]?.rebuild?.owner);
        assert.equal(await stores[1]!.transitionRebuild(stored!.id, ['running'], 'cancelled', {}), true);
      }
    });

    it('a job inserted while its knowledge base is deleted from another pool: never a job without its knowledge base', async () => {
      const { stores } = await storesOnOneSchema(2);
      for (let round = 0; round < 30; round++) {
        const account = `acct_${round}`;
        await registerTargets(stores[0]!, account);
        const [inserted, deleted] = await Promise.all([
          sleep(Math.random() * 3).then(() => stores[0]!.insertJob(job(account, 'user'), 10)),
          sleep(Math.random() * 3).then(() => stores[1]!.deleteKnowledgeBase(account, 'kb')),
        ]);
        const kbLeft = (await stores[1]!.getKnowledgeBase(account, 'kb')) !== null;
        const jobs = await stores[0]!.countJobsUsingKnowledgeBase(account, 'kb');
        // Either the job got in first and the delete was refused, or the delete won and the insert saw it gone.
        if (inserted.ok) assert.ok(!deleted && kbLeft && jobs === 1, `round ${round}: job inserted, knowledge base deleted`);
        else assert.ok(inserted.reason === 'kb_missing' && deleted && !kbLeft && jobs === 0, `round ${round}: ${JSON.stringify(inserted)}`);
      }
    });

    it('a lease has one holder across two pools, also when callers race for it, at expiry and on take-over', async () => {
      const { stores } = await storesOnOneSchema(2);
      for (let round = 0; round < 25; round++) {
        const name = `lease_${round}`;
        const owners = ['a', 'b', 'c', 'd', 'e', 'f'];
        const race = (now: number, takeOverFrom?: string) =>
          Promise.all(
            owners.map(async (owner, i) => {
              await sleep(Math.random() * 3);
              return { owner, ...(await stores[i % 2]!.acquireLease(name, `${owner}${round}`, 1000, now, takeOverFrom)) };
            }),
          );
        const check = (results: Awaited<ReturnType<typeof race>>, label: string): string => {
          const winners = results.filter((r) => r.acquired);
          assert.equal(winners.length, 1, `${label}: ${JSON.stringify(results)}`);
          const holder = winners[0]!.holder!;
          for (const r of results) assert.equal(r.holder, holder, `${label}: every caller is told the holder`);
          return holder;
        };
        const first = check(await race(T0), 'free');
        const second = check(await race(T0 + 1000), 'expired');
        assert.notEqual(second, undefined);
        // Two callers both taking over from the holder (known dead): one gets it.
        const [x, y] = await Promise.all([
          stores[0]!.acquireLease(name, `x${round}`, 1000, T0 + 1001, second),
          stores[1]!.acquireLease(name, `y${round}`, 1000, T0 + 1001, second),
        ]);
        assert.equal([x, y].filter((r) => r.acquired).length, 1, JSON.stringify([x, y, first]));
      }
    });

    it('a store query waiting on a lock fails at the statement timeout instead of hanging', async () => {
      const {
        stores: [store],
        schema,
      } = await storesOnOneSchema(1, { statementTimeoutMs: 300 });
      await registerTargets(store!, 'acct');
      const j = job('acct', 'locked');
      assert.deepEqual(await store!.insertJob(j, 5), { ok: true });
      const { url } = await sharedDatabase();
      // Another session holds the job's row and the account's job namespace (as a stuck process would).
      const blocker = openPostgres(url, 'public', { max: 1 });
      const holder = await blocker.pool.connect();
      try {
        await holder.query('BEGIN');
        await holder.query(`SELECT 1 FROM ${schema}.jobs WHERE id = $1 FOR UPDATE`, [j.id]);
        const timedOut = (e: unknown) => (e as { code?: string }).code === '57014';
        await assert.rejects(store!.mutateJob(j.id, (cur) => ({ ...cur, statusReason: 'x' })), timedOut);
        await assert.rejects(store!.deleteJob(j.id), timedOut);
        // Reads that need no lock still answer.
        assert.equal((await store!.getJobById(j.id))?.name, 'locked');
        await holder.query('ROLLBACK');
        assert.equal((await store!.mutateJob(j.id, (cur) => ({ ...cur, statusReason: 'x' })))?.statusReason, 'x');
      } finally {
        holder.release();
        await blocker.close();
      }
    });

    it('keeps text jsonb could not: a NUL and an unpaired surrogate in a watermark come back exactly', async () => {
      const {
        stores: [store],
      } = await storesOnOneSchema(1);
      await registerTargets(store!, 'acct');
      const odd = job('acct', 'odd', { watermark: { filter: 'a\u0000b', key: ['\ud800', 'x\udc00y', 'ok'] } });
      assert.deepEqual(await store!.insertJob(odd, 5), { ok: true });
      assert.deepEqual(await store!.getJobById(odd.id), odd);
      // Failed rows: the document id and reason become storable text (as in the vector store), consistently.
      await store!.recordFailures(odd.id, [{ docId: 'n\u0000ul', key: ['n\u0000ul'], reason: 'bad \u0000 row' }], T0);
      const [failure] = (await store!.listFailures(odd.id, { limit: 5, cursor: null })).items;
      assert.deepEqual(failure?.key, ['n\u0000ul'], 'the key, needed to read the row again, is exact');
      assert.equal(failure?.docId, 'n\ufffdul');
      assert.equal(await store!.clearFailures(odd.id, ['n\u0000ul']), 1);
    });

    it('due jobs are read from the partial index jobs_due, not by scanning every job', async () => {
      const {
        stores: [store],
        schema,
      } = await storesOnOneSchema(1);
      const { url } = await sharedDatabase();
      const admin = openPostgres(url, schema, { max: 1 });
      try {
        // 20,000 jobs, one in ten scheduled: inserted in SQL (the store's inserts would take minutes).
        await admin.pool.query(`
          INSERT INTO jobs (id, account_id, name, status, kb_name, database_name, next_run_ms, body)
          SELECT 'job_' || lpad(g::text, 6, '0'), 'acct', 'j' || g,
                 CASE WHEN g % 10 = 0 THEN 'scheduled' ELSE 'completed' END, 'kb', 'db', ${T0} + g * 1000, '{}'
          FROM generate_series(1, 20000) AS g`);
        await admin.pool.query('ANALYZE jobs');
        const { rows } = await admin.pool.query(`EXPLAIN (FORMAT JSON) ${DUE_JOBS_SQL}`, [T0 + 5_000_000, 100]);
        const plan = JSON.stringify(rows[0]['QUERY PLAN']);
        assert.match(plan, /"Index Name":"jobs_due"/, plan);
        assert.doesNotMatch(plan, /Seq Scan/, plan);
        assert.equal((await store!.listDueJobs(T0 + 100_000, 1000)).length, 10);
      } finally {
        await admin.close();
      }
    });
  });
});
