/**
 * The ControlStore contract: every adapter (SQLite today, PostgreSQL later) runs this same suite.
 * Each test gets a fresh, empty store from `makeStore` (its own file, database or schema), because
 * several methods (due jobs, counts by status, running runs) look across every account.
 *
 * Records must come back field for field: numbers as numbers (epoch ms beyond 2^31, counts), null
 * as null, arrays in order, text byte for byte.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { newId } from '../../src/core/ids.js';
import {
  type AccountRecord,
  ActiveJobLimitError,
  type ApiKeyRecord,
  type ControlStore,
  type DatabaseRecord,
  EMPTY_TOTALS,
  type JobListQuery,
  type JobRecord,
  type JobStatus,
  type KnowledgeBaseRecord,
  type RebuildRecord,
  type RunRecord,
  type Watermark,
  type WebhookDelivery,
} from '../../src/store/port.js';

export interface ControlStoreHandle {
  store: ControlStore;
  close(): Promise<void>;
}

/** A Wednesday in 2031: epoch ms well past 2^31, so a 32-bit column would show. */
const T0 = Date.UTC(2031, 0, 15, 8, 30, 0);
const MIN = 60_000;
const DAY = 86_400_000;

const A = 'acct_alpha';
const B = 'acct_bravo';

/** Text a source key may hold: quotes, a backslash, JSON-looking text, non-ASCII, an astral emoji. */
const AWKWARD = `O'Brien "quoted" \\ {"k": [1]} ünïcødé 日本 🚀`;

export function dbRecord(accountId: string, name: string, over: Partial<DatabaseRecord> = {}): DatabaseRecord {
  return {
    id: newId('db'),
    accountId,
    name,
    engine: 'postgres',
    parameters: {
      host: 'db.internal',
      port: 5432,
      database: 'shop',
      user: 'reader',
      ssl: true,
      options: { statement_timeout: 3000, search_path: ['sales', 'public'] },
      url: null,
    },
    secret: 'v1:enc:c2VjcmV0',
    createdAt: T0 - DAY,
    ...over,
  };
}

export function kbRecord(
  accountId: string,
  name: string,
  over: Partial<KnowledgeBaseRecord> = {},
): KnowledgeBaseRecord {
  const id = over.id ?? newId('kb');
  return {
    id,
    accountId,
    name,
    description: `Orders for ${name} — ${AWKWARD}`,
    embedding: {
      provider: 'openai',
      model: 'text-embedding-3-small',
      dimensions: 512,
      base_url: 'https://llm.internal/v1',
    },
    secret: 'v1:enc:a2V5',
    chunking: { chunk_size: 800, chunk_overlap: 120 },
    createdAt: T0 - DAY,
    collection: id,
    rebuild: null,
    ...over,
  };
}

/** A rebuild as kb/rebuild.ts starts one: a new model and chunking into a shadow collection. */
export function rebuildRecord(over: Partial<RebuildRecord> = {}): RebuildRecord {
  return {
    status: 'running',
    collection: newId('kb'),
    embedding: {
      provider: 'openai',
      model: 'text-embedding-3-large',
      dimensions: 1024,
      base_url: null,
      price_per_million_tokens: 0.13,
    },
    secret: 'v1:enc:bmV3LWtleQ==',
    chunking: { chunk_size: 400, chunk_overlap: 40 },
    documentsDone: 0,
    documentsTotal: 0,
    cursor: null,
    startedAt: T0,
    finishedAt: null,
    error: null,
    owner: null,
    leaseExpiresAt: null,
    ...over,
  };
}

/** Every field set, none at its default, so a field an adapter drops or mangles shows. */
function fullJob(accountId: string, name: string, over: Partial<JobRecord> = {}): JobRecord {
  return {
    id: newId('job'),
    accountId,
    name,
    databaseName: 'orders_db',
    tableSchema: 'sales',
    tableName: 'orders',
    sourceTable: 'orders_db.sales.orders',
    kbName: 'orders_kb',
    contentColumns: ['title', 'body', 'notes'],
    metadataColumns: ['region', 'total'],
    filterColumn: 'updated_at',
    keyColumns: ['tenant_id', 'order_id'],
    interval: '15m',
    intervalMs: 15 * MIN,
    startMs: T0,
    endMs: T0 + 30 * DAY,
    backfill: false,
    lookbackSeconds: 120,
    batchSize: 250,
    status: 'scheduled',
    statusBeforeRun: 'paused',
    statusReason: `source table was missing once: ${AWKWARD}`,
    nextRunMs: T0 + 15 * MIN,
    watermark: { filter: '2031-01-15T08:29:59.123456Z', key: ['7', AWKWARD] },
    started: true,
    totals: {
      rows_read: 1_000_001,
      documents_added: 1002,
      documents_updated: 1003,
      documents_unchanged: 1004,
      documents_deleted: 1009,
      rows_skipped: 1005,
      rows_failed: 1006,
      chunks_written: 3_000_007,
      runs_succeeded: 1008,
      runs_failed: 1009,
    },
    lastRun: {
      id: newId('run'),
      trigger: 'catch_up',
      status: 'failed',
      startedAt: T0 - 5000,
      finishedAt: T0 - 1000,
      error: { code: 'SYNC_FAILED', message: `connection reset: ${AWKWARD}` },
    },
    createdAt: T0 - DAY,
    updatedAt: T0 - 1000,
    ...over,
  };
}

/** The other extreme: every nullable field null, every list that may be empty empty. */
function sparseJob(accountId: string, name: string, over: Partial<JobRecord> = {}): JobRecord {
  return fullJob(accountId, name, {
    tableSchema: null,
    metadataColumns: [],
    keyColumns: ['id'],
    backfill: true,
    lookbackSeconds: 0,
    status: 'completed',
    statusBeforeRun: null,
    statusReason: null,
    nextRunMs: null,
    watermark: null,
    started: false,
    totals: { ...EMPTY_TOTALS },
    lastRun: null,
    ...over,
  });
}

const WM_START: Watermark = { filter: '2031-01-14T00:00:00Z', key: ['3', 'a'] };
const WM_END: Watermark = { filter: '2031-01-15T00:00:00Z', key: ['9', AWKWARD] };

function runRecord(jobId: string, over: Partial<RunRecord> = {}): RunRecord {
  return {
    id: newId('run'),
    jobId,
    trigger: 'schedule',
    status: 'running',
    startedAt: T0,
    finishedAt: null,
    rowsRead: 11,
    documentsAdded: 12,
    documentsUpdated: 13,
    documentsUnchanged: 14,
    rowsSkipped: 15,
    rowsFailed: 16,
    chunksWritten: 17,
    watermarkStart: WM_START,
    watermarkEnd: WM_END,
    error: null,
    ...over,
  };
}

const idsOf = (records: Array<{ id: string }>) => records.map((r) => r.id);
const sorted = (xs: string[]) => [...xs].sort();

/** Deterministic shuffle, so insertion order never equals the order a query must return. */
function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  let seed = 7;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The store with an insertJob that first registers the job's knowledge base and database (a
 * job's targets must exist when it is inserted), so the job cases need not repeat it. The cases
 * of that rule itself call the store's own insertJob.
 */
function withJobTargets(store: ControlStore): ControlStore {
  const wrapped = Object.create(store) as ControlStore;
  wrapped.insertJob = async (job, maxActive) => {
    await store.insertKnowledgeBase(kbRecord(job.accountId, job.kbName));
    await store.insertDatabase(dbRecord(job.accountId, job.databaseName));
    return store.insertJob(job, maxActive);
  };
  return wrapped;
}

export function controlStoreContract(name: string, makeStore: () => Promise<ControlStoreHandle>): void {
  describe(`ControlStore contract: ${name}`, () => {
    let handle: ControlStoreHandle;
    let store: ControlStore;

    beforeEach(async () => {
      handle = await makeStore();
      store = withJobTargets(handle.store);
    });
    afterEach(async () => {
      await handle.close();
    });

    async function insertJobs(jobs: JobRecord[], maxActive = 1000): Promise<void> {
      for (const job of jobs) assert.deepEqual(await store.insertJob(job, maxActive), { ok: true }, job.name);
    }

    /** Follows `next` to the end; fails on a cursor loop instead of hanging. */
    async function pageJobs(
      accountId: string,
      query: Omit<JobListQuery, 'cursor'>,
    ): Promise<{ ids: string[]; sizes: number[] }> {
      const ids: string[] = [];
      const sizes: number[] = [];
      let cursor: string | null = null;
      for (let guard = 0; guard < 100; guard++) {
        const page: Awaited<ReturnType<ControlStore['listJobs']>> = await store.listJobs(accountId, {
          ...query,
          cursor,
        });
        assert.ok(page.items.length <= query.limit, 'a page never exceeds the limit');
        ids.push(...idsOf(page.items));
        sizes.push(page.items.length);
        if (page.next === null) return { ids, sizes };
        cursor = page.next;
      }
      assert.fail('listJobs cursor never reached the end');
    }

    async function pageRuns(jobId: string, limit: number): Promise<{ ids: string[]; sizes: number[] }> {
      const ids: string[] = [];
      const sizes: number[] = [];
      let cursor: string | null = null;
      for (let guard = 0; guard < 100; guard++) {
        const page: Awaited<ReturnType<ControlStore['listRuns']>> = await store.listRuns(jobId, {
          limit,
          cursor,
        });
        assert.ok(page.items.length <= limit, 'a page never exceeds the limit');
        ids.push(...idsOf(page.items));
        sizes.push(page.items.length);
        if (page.next === null) return { ids, sizes };
        cursor = page.next;
      }
      assert.fail('listRuns cursor never reached the end');
    }

    const dueNames = async (now: number, limit: number) =>
      (await store.listDueJobs(now, limit)).map((j) => j.name);

    // --- databases ---------------------------------------------------------------------------

    describe('databases', () => {
      it('inserts, gets and lists a database field for field', async () => {
        const rec = dbRecord(A, 'orders_db');
        const sparse = dbRecord(A, 'plain_db', { engine: 'sqlite', parameters: {}, secret: null });
        assert.equal(await store.insertDatabase(rec), 'ok');
        assert.equal(await store.insertDatabase(sparse), 'ok');
        assert.deepEqual(await store.getDatabase(A, 'orders_db'), rec);
        assert.deepEqual(await store.getDatabase(A, 'plain_db'), sparse);
        assert.equal(await store.getDatabase(A, 'missing_db'), null);
        assert.deepEqual(await store.listDatabases(A), [rec, sparse]);
      });

      it('lists an account’s databases ordered by name', async () => {
        for (const n of ['mike', 'alpha', 'zulu', 'delta'])
          assert.equal(await store.insertDatabase(dbRecord(A, n)), 'ok');
        assert.deepEqual(
          (await store.listDatabases(A)).map((d) => d.name),
          ['alpha', 'delta', 'mike', 'zulu'],
        );
        assert.deepEqual(await store.listDatabases(B), []);
      });

      it('a name is unique per account, and free in another account', async () => {
        const first = dbRecord(A, 'shared');
        assert.equal(await store.insertDatabase(first), 'ok');
        assert.equal(await store.insertDatabase(dbRecord(A, 'shared', { engine: 'mysql' })), 'duplicate');
        assert.deepEqual(await store.getDatabase(A, 'shared'), first, 'the duplicate changed nothing');
        assert.equal((await store.listDatabases(A)).length, 1);

        const other = dbRecord(B, 'shared', { engine: 'mysql' });
        assert.equal(await store.insertDatabase(other), 'ok');
        assert.deepEqual(await store.getDatabase(B, 'shared'), other);
        assert.deepEqual(await store.getDatabase(A, 'shared'), first);
      });

      it('accounts are isolated', async () => {
        assert.equal(await store.insertDatabase(dbRecord(A, 'only_in_a')), 'ok');
        assert.equal(await store.getDatabase(B, 'only_in_a'), null);
        assert.deepEqual(await store.listDatabases(B), []);
        assert.equal(await store.deleteDatabase(B, 'only_in_a'), false);
        assert.ok(await store.getDatabase(A, 'only_in_a'), 'a delete in B leaves A alone');
      });

      it('deletes by account and name, and frees the name', async () => {
        const keep = dbRecord(A, 'keep');
        assert.equal(await store.insertDatabase(dbRecord(A, 'gone')), 'ok');
        assert.equal(await store.insertDatabase(keep), 'ok');
        assert.equal(await store.deleteDatabase(A, 'gone'), true);
        assert.equal(await store.deleteDatabase(A, 'gone'), false);
        assert.equal(await store.deleteDatabase(A, 'never'), false);
        assert.equal(await store.getDatabase(A, 'gone'), null);
        assert.deepEqual(await store.listDatabases(A), [keep]);
        const again = dbRecord(A, 'gone', { engine: 'sqlite' });
        assert.equal(await store.insertDatabase(again), 'ok');
        assert.deepEqual(await store.getDatabase(A, 'gone'), again);
      });
    });

    // --- knowledge bases ---------------------------------------------------------------------

    describe('knowledge bases', () => {
      it('inserts, gets and lists a knowledge base field for field', async () => {
        const rec = kbRecord(A, 'orders_kb');
        const sparse = kbRecord(A, 'local_kb', {
          description: null,
          embedding: { provider: 'local', model: null, dimensions: null, base_url: null },
          secret: null,
          chunking: { chunk_size: 512, chunk_overlap: 0 },
        });
        assert.equal(await store.insertKnowledgeBase(rec), 'ok');
        assert.equal(await store.insertKnowledgeBase(sparse), 'ok');
        assert.deepEqual(await store.getKnowledgeBase(A, 'orders_kb'), rec);
        assert.deepEqual(await store.getKnowledgeBase(A, 'local_kb'), sparse);
        assert.equal(await store.getKnowledgeBase(A, 'missing_kb'), null);
        assert.deepEqual(await store.listKnowledgeBases(A), [sparse, rec], 'ordered by name');
      });

      it('a name is unique per account, free in another account, and apart from database names', async () => {
        const first = kbRecord(A, 'shared');
        assert.equal(await store.insertKnowledgeBase(first), 'ok');
        assert.equal(
          await store.insertKnowledgeBase(kbRecord(A, 'shared', { description: 'second' })),
          'duplicate',
        );
        assert.deepEqual(await store.getKnowledgeBase(A, 'shared'), first, 'the duplicate changed nothing');
        const other = kbRecord(B, 'shared');
        assert.equal(await store.insertKnowledgeBase(other), 'ok');
        assert.deepEqual(await store.getKnowledgeBase(B, 'shared'), other);
        // Databases and knowledge bases are separate namespaces.
        assert.equal(await store.insertDatabase(dbRecord(A, 'shared')), 'ok');
        assert.deepEqual(await store.getKnowledgeBase(A, 'shared'), first);
      });

      it('accounts are isolated', async () => {
        assert.equal(await store.insertKnowledgeBase(kbRecord(A, 'only_in_a')), 'ok');
        assert.equal(await store.getKnowledgeBase(B, 'only_in_a'), null);
        assert.deepEqual(await store.listKnowledgeBases(B), []);
        assert.equal(await store.deleteKnowledgeBase(B, 'only_in_a'), false);
        assert.ok(await store.getKnowledgeBase(A, 'only_in_a'), 'a delete in B leaves A alone');
      });

      it('deletes by account and name, and frees the name', async () => {
        const keep = kbRecord(A, 'keep');
        assert.equal(await store.insertKnowledgeBase(kbRecord(A, 'gone')), 'ok');
        assert.equal(await store.insertKnowledgeBase(keep), 'ok');
        assert.equal(await store.deleteKnowledgeBase(A, 'gone'), true);
        assert.equal(await store.deleteKnowledgeBase(A, 'gone'), false);
        assert.equal(await store.getKnowledgeBase(A, 'gone'), null);
        assert.deepEqual(await store.listKnowledgeBases(A), [keep]);
        assert.equal(await store.insertKnowledgeBase(kbRecord(A, 'gone')), 'ok');
      });
    });

    // --- knowledge bases: collection, description, rebuilds --------------------------------------

    describe('knowledge bases: collection and description', () => {
      it('the collection and the rebuild round-trip; getKnowledgeBaseById looks across accounts', async () => {
        const moved = kbRecord(A, 'moved_kb', { collection: newId('kb') });
        const finished = kbRecord(B, 'finished_kb', {
          collection: 'kb_shadow_after_swap',
          rebuild: rebuildRecord({
            status: 'failed',
            collection: 'kb_shadow_after_swap',
            documentsDone: 3_000_000_001,
            documentsTotal: 3_000_000_002,
            cursor: AWKWARD,
            finishedAt: T0 + DAY,
            error: { code: 'EMBEDDING_FAILED', message: `provider said no: ${AWKWARD}` },
            owner: 'proc_dead',
            leaseExpiresAt: T0 + MIN,
          }),
        });
        assert.equal(await store.insertKnowledgeBase(moved), 'ok');
        assert.equal(await store.insertKnowledgeBase(finished), 'ok');
        assert.deepEqual(await store.getKnowledgeBase(A, 'moved_kb'), moved);
        assert.deepEqual(await store.listKnowledgeBases(B), [finished]);
        assert.deepEqual(await store.getKnowledgeBaseById(moved.id), moved);
        assert.deepEqual(await store.getKnowledgeBaseById(finished.id), finished, 'any account');
        assert.equal(await store.getKnowledgeBaseById(newId('kb')), null);
      });

      it('a knowledge base inserted without collection and rebuild (an older caller) reads its id and null', async () => {
        const { collection: _c, rebuild: _r, ...older } = kbRecord(A, 'older_kb');
        assert.equal(await store.insertKnowledgeBase(older as KnowledgeBaseRecord), 'ok');
        assert.deepEqual(await store.getKnowledgeBase(A, 'older_kb'), { ...older, collection: older.id, rebuild: null });
      });

      it('updateKnowledgeBaseSettings changes only the given settings, within the account', async () => {
        const rec = kbRecord(A, 'described');
        assert.equal(await store.insertKnowledgeBase(rec), 'ok');
        assert.equal(await store.updateKnowledgeBaseSettings(A, 'described', { description: `new: ${AWKWARD}` }), true);
        assert.deepEqual(await store.getKnowledgeBase(A, 'described'), { ...rec, description: `new: ${AWKWARD}` });
        assert.equal(await store.updateKnowledgeBaseSettings(A, 'described', { description: null }), true);
        assert.deepEqual(await store.getKnowledgeBase(A, 'described'), { ...rec, description: null });
        assert.equal(await store.updateKnowledgeBaseSettings(A, 'described', { pricePerMillionTokens: 0.13, secret: 'enc:new' }), true);
        assert.deepEqual(await store.getKnowledgeBase(A, 'described'), {
          ...rec,
          description: null,
          secret: 'enc:new',
          embedding: { ...rec.embedding, price_per_million_tokens: 0.13 },
        });
        assert.equal(await store.updateKnowledgeBaseSettings(B, 'described', { description: 'x' }), false, 'another account');
        assert.equal(await store.updateKnowledgeBaseSettings(A, 'missing', { description: 'x' }), false);
        assert.equal((await store.getKnowledgeBase(A, 'described'))?.description, null);
      });
    });

    describe('knowledge bases: rebuilds', () => {
      const LEASE = 30_000;

      /** A knowledge base with a running rebuild, unowned. */
      async function rebuilding(name: string, over: Partial<RebuildRecord> = {}): Promise<{ kb: KnowledgeBaseRecord; rebuild: RebuildRecord }> {
        const kb = kbRecord(A, name);
        assert.equal(await store.insertKnowledgeBase(kb), 'ok');
        const rebuild = rebuildRecord(over);
        assert.equal(await store.startRebuild(A, name, rebuild), 'ok');
        return { kb, rebuild };
      }

      it('startRebuild records a running, unowned rebuild, with the description in the same write', async () => {
        const kb = kbRecord(A, 'kb');
        assert.equal(await store.insertKnowledgeBase(kb), 'ok');
        // Whatever the caller filled in, the rebuild starts running and unowned.
        const given = rebuildRecord({ status: 'swapping', owner: 'proc_x', leaseExpiresAt: T0 + DAY });
        assert.equal(await store.startRebuild(A, 'kb', given, 'being rebuilt'), 'ok');
        const stored = { ...kb, description: 'being rebuilt', rebuild: { ...given, status: 'running' as const, owner: null, leaseExpiresAt: null } };
        assert.deepEqual(await store.getKnowledgeBase(A, 'kb'), stored);
        assert.equal(stored.collection, kb.id, 'the knowledge base keeps its collection until the swap');
        assert.equal(await store.startRebuild(A, 'missing', rebuildRecord()), 'not_found');
        assert.equal(await store.startRebuild(B, 'kb', rebuildRecord()), 'not_found', 'another account');
      });

      it('startRebuild refuses while a rebuild is running or swapping, and replaces a finished one', async () => {
        const { kb } = await rebuilding('kb');
        const before = await store.getKnowledgeBase(A, 'kb');
        assert.equal(await store.startRebuild(A, 'kb', rebuildRecord(), 'not written'), 'busy');
        assert.deepEqual(await store.getKnowledgeBase(A, 'kb'), before, 'a refused start writes nothing, description included');
        assert.ok(await store.claimRebuild('proc_a', T0, LEASE));
        assert.equal(await store.transitionRebuild(kb.id, ['running'], 'swapping', { owner: 'proc_a' }), true);
        assert.equal(await store.startRebuild(A, 'kb', rebuildRecord()), 'busy', 'swapping');
        for (const end of ['failed', 'cancelled'] as const) {
          assert.equal(await store.transitionRebuild(kb.id, ['running', 'swapping'], end, { finishedAt: T0 + MIN }), true);
          const next = rebuildRecord({ startedAt: T0 + 2 * MIN });
          assert.equal(await store.startRebuild(A, 'kb', next), 'ok', `after ${end}`);
          assert.deepEqual((await store.getKnowledgeBase(A, 'kb'))?.rebuild, next);
        }
      });

      it('two concurrent startRebuild calls: one ok, one busy (every time)', async () => {
        for (let round = 0; round < 5; round++) {
          const name = `race_${round}`;
          assert.equal(await store.insertKnowledgeBase(kbRecord(A, name)), 'ok');
          const [x, y] = [rebuildRecord(), rebuildRecord()];
          const outcomes = await Promise.all([store.startRebuild(A, name, x), store.startRebuild(A, name, y)]);
          assert.deepEqual([...outcomes].sort(), ['busy', 'ok'], `round ${round}`);
          const stored = (await store.getKnowledgeBase(A, name))?.rebuild;
          assert.deepEqual(stored, outcomes[0] === 'ok' ? x : y, 'the winner’s rebuild is the one stored');
        }
      });

      it('claimRebuild leases an active rebuild with no live lease; an expired lease is taken over', async () => {
        assert.equal(await store.claimRebuild('proc_a', T0, LEASE), null, 'nothing to claim');
        const { kb, rebuild } = await rebuilding('kb');
        const claimed = await store.claimRebuild('proc_a', T0, LEASE);
        const leased = { ...kb, rebuild: { ...rebuild, owner: 'proc_a', leaseExpiresAt: T0 + LEASE } };
        assert.deepEqual(claimed, leased, 'the whole knowledge base, as stored after the claim');
        assert.deepEqual(await store.getKnowledgeBaseById(kb.id), leased);
        assert.equal(await store.claimRebuild('proc_b', T0 + 1, LEASE), null, 'a live lease');
        assert.equal(await store.claimRebuild('proc_b', T0 + LEASE, LEASE), null, 'expires at, not before, now');
        const taken = await store.claimRebuild('proc_b', T0 + LEASE + 1, LEASE);
        assert.equal(taken?.rebuild?.owner, 'proc_b', 'a dead process’s rebuild is taken over');
        assert.equal(taken?.rebuild?.leaseExpiresAt, T0 + 2 * LEASE + 1);
        // Swapping is active too; finished ones are never claimed.
        assert.equal(await store.transitionRebuild(kb.id, ['running'], 'swapping', { owner: 'proc_b' }), true);
        assert.equal((await store.claimRebuild('proc_c', T0 + DAY, LEASE))?.rebuild?.status, 'swapping');
        assert.equal(await store.transitionRebuild(kb.id, ['swapping'], 'failed', { finishedAt: T0 + DAY }), true);
        assert.equal(await store.claimRebuild('proc_d', T0 + 2 * DAY, LEASE), null, 'a failed rebuild is not claimed');
        const plain = kbRecord(A, 'never_rebuilt');
        assert.equal(await store.insertKnowledgeBase(plain), 'ok');
        assert.equal(await store.claimRebuild('proc_d', T0 + 2 * DAY, LEASE), null);
      });

      it('many concurrent claims of one rebuild from different owners: exactly one gets it (every time)', async () => {
        for (let round = 0; round < 5; round++) {
          const { kb } = await rebuilding(`race_${round}`);
          const now = T0 + round * DAY;
          const owners = Array.from({ length: 12 }, (_, i) => `proc_${round}_${i}`);
          const claims = await Promise.all(owners.map((o) => store.claimRebuild(o, now, LEASE)));
          const winners = claims.filter((c) => c !== null);
          assert.equal(winners.length, 1, `round ${round}: ${winners.length} claims won`);
          const stored = await store.getKnowledgeBaseById(kb.id);
          assert.equal(stored?.rebuild?.owner, winners[0]?.rebuild?.owner, 'the winner holds the lease as stored');
          assert.deepEqual(winners[0], stored);
          // Done with this round's rebuild, so the next round races over its own one alone.
          assert.equal(await store.transitionRebuild(kb.id, ['running'], 'cancelled', {}), true);
        }
      });

      it('saveRebuildProgress writes progress and renews the lease for the owner only', async () => {
        const { kb, rebuild } = await rebuilding('kb');
        assert.ok(await store.claimRebuild('proc_a', T0, LEASE));
        const progress = { documentsDone: 3_000_000_000, documentsTotal: 3_000_000_500, cursor: AWKWARD, leaseExpiresAt: T0 + 2 * LEASE };
        assert.equal(await store.saveRebuildProgress(kb.id, 'proc_a', progress), 'running');
        const after = { ...kb, rebuild: { ...rebuild, ...progress, owner: 'proc_a' } };
        assert.deepEqual(await store.getKnowledgeBaseById(kb.id), after);
        assert.equal(await store.claimRebuild('proc_b', T0 + LEASE + 1, LEASE), null, 'the renewed lease holds');
        const other = { documentsDone: 1, documentsTotal: 2, cursor: null, leaseExpiresAt: T0 + DAY };
        assert.equal(await store.saveRebuildProgress(kb.id, 'proc_b', other), null, 'not the owner');
        assert.equal(await store.saveRebuildProgress(newId('kb'), 'proc_a', other), null, 'no such knowledge base');
        assert.deepEqual(await store.getKnowledgeBaseById(kb.id), after, 'nothing written by a non-owner');
        // Taken over after the lease lapsed: the old owner is told it no longer holds it.
        assert.ok(await store.claimRebuild('proc_b', T0 + 2 * LEASE + 1, LEASE));
        assert.equal(await store.saveRebuildProgress(kb.id, 'proc_a', other), null);
        assert.equal(await store.saveRebuildProgress(kb.id, 'proc_b', { ...progress, cursor: null }), 'running');
        assert.equal((await store.getKnowledgeBaseById(kb.id))?.rebuild?.cursor, null);
      });

      it('cancelled, then saveRebuildProgress by the owner answers cancelled and writes nothing', async () => {
        const { kb } = await rebuilding('kb');
        assert.ok(await store.claimRebuild('proc_a', T0, LEASE));
        const first = { documentsDone: 10, documentsTotal: 100, cursor: 'doc_10', leaseExpiresAt: T0 + LEASE };
        assert.equal(await store.saveRebuildProgress(kb.id, 'proc_a', first), 'running');
        assert.equal(await store.transitionRebuild(kb.id, ['running'], 'cancelled', { finishedAt: T0 + MIN }), true);
        const before = await store.getKnowledgeBaseById(kb.id);
        const later = { documentsDone: 20, documentsTotal: 100, cursor: 'doc_20', leaseExpiresAt: T0 + DAY };
        assert.equal(await store.saveRebuildProgress(kb.id, 'proc_a', later), 'cancelled');
        assert.deepEqual(await store.getKnowledgeBaseById(kb.id), before, 'progress and lease unchanged');
        assert.equal(await store.saveRebuildProgress(kb.id, 'proc_b', later), null, 'not the owner');
      });

      it('transitionRebuild moves only from the given statuses, only for the owner when given', async () => {
        const { kb, rebuild } = await rebuilding('kb');
        assert.ok(await store.claimRebuild('proc_a', T0, LEASE));
        assert.equal(await store.transitionRebuild(kb.id, ['swapping'], 'succeeded', {}), false, 'not in from');
        assert.equal(await store.transitionRebuild(kb.id, [], 'cancelled', {}), false, 'empty from');
        assert.equal(await store.transitionRebuild(kb.id, ['running'], 'swapping', { owner: 'proc_b' }), false, 'not the owner');
        assert.equal(await store.transitionRebuild(newId('kb'), ['running'], 'cancelled', {}), false, 'no such knowledge base');
        assert.equal((await store.getKnowledgeBaseById(kb.id))?.rebuild?.status, 'running', 'nothing moved');
        assert.equal(await store.transitionRebuild(kb.id, ['running'], 'swapping', { owner: 'proc_a' }), true);
        const error = { code: 'SWAP_FAILED', message: `differences remain: ${AWKWARD}` };
        assert.equal(await store.transitionRebuild(kb.id, ['running', 'swapping'], 'failed', { owner: 'proc_a', finishedAt: T0 + MIN, error }), true);
        const failed = { ...rebuild, status: 'failed' as const, finishedAt: T0 + MIN, error, owner: 'proc_a', leaseExpiresAt: T0 + LEASE };
        assert.deepEqual((await store.getKnowledgeBaseById(kb.id))?.rebuild, failed);
        // error: null clears it; finishedAt and error left out stay as they are.
        assert.equal(await store.transitionRebuild(kb.id, ['failed'], 'cancelled', { error: null }), true);
        assert.deepEqual((await store.getKnowledgeBaseById(kb.id))?.rebuild, { ...failed, status: 'cancelled', error: null });
        assert.equal(await store.transitionRebuild(kb.id, ['running'], 'cancelled', {}), false, 'cancel after the end');
      });

      it('finishRebuild by the swapping owner gives the knowledge base the rebuild’s configuration and collection', async () => {
        const { kb, rebuild } = await rebuilding('kb');
        assert.ok(await store.claimRebuild('proc_a', T0, LEASE));
        assert.equal(await store.finishRebuild(kb.id, 'proc_a', T0 + MIN), false, 'still running');
        assert.equal(await store.transitionRebuild(kb.id, ['running'], 'swapping', { owner: 'proc_a' }), true);
        const swapping = await store.getKnowledgeBaseById(kb.id);
        assert.equal(await store.finishRebuild(kb.id, 'proc_b', T0 + MIN), false, 'not the owner');
        assert.equal(await store.finishRebuild(newId('kb'), 'proc_a', T0 + MIN), false);
        assert.deepEqual(await store.getKnowledgeBaseById(kb.id), swapping, 'a non-owner’s finish writes nothing');
        assert.equal(await store.finishRebuild(kb.id, 'proc_a', T0 + 2 * MIN), true);
        const done: KnowledgeBaseRecord = {
          ...kb,
          embedding: rebuild.embedding,
          secret: rebuild.secret,
          chunking: rebuild.chunking,
          collection: rebuild.collection,
          rebuild: { ...rebuild, status: 'succeeded', finishedAt: T0 + 2 * MIN, owner: null, leaseExpiresAt: null },
        };
        assert.deepEqual(await store.getKnowledgeBaseById(kb.id), done);
        assert.deepEqual(await store.getKnowledgeBase(A, 'kb'), done);
        assert.equal(await store.finishRebuild(kb.id, 'proc_a', T0 + 3 * MIN), false, 'once');
        assert.equal(await store.claimRebuild('proc_c', T0 + DAY, LEASE), null, 'a succeeded rebuild is not claimed');
        // The next rebuild starts from the swapped configuration.
        assert.equal(await store.startRebuild(A, 'kb', rebuildRecord()), 'ok');
        assert.equal((await store.getKnowledgeBase(A, 'kb'))?.collection, rebuild.collection);
      });
    });

    // --- jobs: insert and read ---------------------------------------------------------------

    describe('jobs: insert and read', () => {
      it('round-trips a job with every field set, through every read', async () => {
        const job = fullJob(A, 'full');
        assert.deepEqual(await store.insertJob(job, 10), { ok: true });
        assert.deepEqual(await store.getJob(A, job.id), job, 'getJob by id');
        assert.deepEqual(await store.getJob(A, 'full'), job, 'getJob by name');
        assert.deepEqual(await store.getJobById(job.id), job, 'getJobById');
        assert.deepEqual((await store.listJobs(A, { limit: 10, cursor: null })).items, [job], 'listJobs');
        assert.deepEqual(await store.listJobsWithStatus('scheduled', 10), [job], 'listJobsWithStatus');
        assert.deepEqual(await store.listDueJobs(job.nextRunMs!, 10), [job], 'listDueJobs');
        let seen: JobRecord | null = null;
        const same = await store.mutateJob(job.id, (current) => {
          seen = current;
          return null;
        });
        assert.deepEqual(seen, job, 'what mutateJob hands to change');
        assert.deepEqual(same, job, 'what mutateJob returns');
      });

      it('round-trips a job whose nullable fields are null', async () => {
        const job = sparseJob(A, 'sparse');
        assert.deepEqual(await store.insertJob(job, 10), { ok: true });
        assert.deepEqual(await store.getJobById(job.id), job);
        assert.deepEqual(await store.getJob(A, 'sparse'), job);
        assert.deepEqual(await store.listJobsWithStatus('completed', 10), [job]);
      });

      it('a job inserted without statusBeforeRun reads back without one (absent or null)', async () => {
        const { statusBeforeRun: _omitted, ...rest } = fullJob(A, 'no_before');
        const job: JobRecord = rest;
        assert.deepEqual(await store.insertJob(job, 10), { ok: true });
        const got = await store.getJobById(job.id);
        assert.ok(got);
        assert.equal(got.statusBeforeRun ?? null, null);
        const { statusBeforeRun: _ignored, ...gotRest } = got;
        assert.deepEqual(gotRest, rest);
      });

      it('stores copies: changing the inserted or returned object changes nothing stored', async () => {
        const job = fullJob(A, 'copy');
        const original = structuredClone(job);
        await insertJobs([job]);
        job.name = 'renamed';
        job.totals.rows_read = -1;
        job.watermark!.key.push('extra');
        const got = (await store.getJobById(job.id))!;
        assert.deepEqual(got, original);
        got.contentColumns.push('x');
        got.status = 'failed';
        assert.deepEqual(await store.getJobById(job.id), original);

        const db = dbRecord(A, 'copy_db');
        const dbOriginal = structuredClone(db);
        assert.equal(await store.insertDatabase(db), 'ok');
        (db.parameters as { host: string }).host = 'elsewhere';
        assert.deepEqual(await store.getDatabase(A, 'copy_db'), dbOriginal);
      });

      it('a job name is unique per account and free in another account', async () => {
        const first = fullJob(A, 'nightly');
        assert.deepEqual(await store.insertJob(first, 10), { ok: true });
        const dup = fullJob(A, 'nightly', { kbName: 'other_kb', status: 'completed' });
        assert.deepEqual(await store.insertJob(dup, 10), { ok: false, reason: 'duplicate' });
        assert.equal(await store.getJobById(dup.id), null, 'the duplicate stored nothing');
        assert.deepEqual(await store.getJob(A, 'nightly'), first);
        assert.equal(await store.countActiveJobs(A), 1);

        const other = fullJob(B, 'nightly');
        assert.deepEqual(await store.insertJob(other, 10), { ok: true });
        assert.deepEqual(await store.getJob(B, 'nightly'), other);
        assert.deepEqual(await store.getJob(A, 'nightly'), first);
      });

      it('getJob looks up by id, else by name; an id wins over another job named like it', async () => {
        // A job, and an impostor whose *name* is that job's id. Every combination of which id is
        // older and which row is inserted first, so neither id order nor row order can decide.
        let n = 0;
        for (const impostorOlder of [true, false]) {
          for (const impostorInsertedFirst of [true, false]) {
            n += 1;
            const olderId = newId('job');
            const target = fullJob(A, `target_${n}`, impostorOlder ? {} : { id: olderId });
            const impostor = fullJob(A, target.id, {
              kbName: 'impostor_kb',
              ...(impostorOlder ? { id: olderId } : {}),
            });
            await insertJobs(impostorInsertedFirst ? [impostor, target] : [target, impostor]);
            const label = `impostor older: ${impostorOlder}, inserted first: ${impostorInsertedFirst}`;
            assert.deepEqual(await store.getJob(A, target.id), target, label);
            assert.deepEqual(await store.getJob(A, impostor.id), impostor, label);
            assert.deepEqual(await store.getJob(A, target.name), target, label);
          }
        }
        assert.equal(await store.getJob(A, 'no_such_job'), null);
        assert.equal(await store.getJob(A, newId('job')), null);
      });

      it('getJob is scoped to the account; getJobById is not', async () => {
        const job = fullJob(A, 'mine');
        await insertJobs([job]);
        assert.equal(await store.getJob(B, job.id), null);
        assert.equal(await store.getJob(B, 'mine'), null);
        assert.deepEqual(await store.getJobById(job.id), job);
        assert.equal(await store.getJobById(newId('job')), null);
        assert.deepEqual(await store.listJobs(B, { limit: 10, cursor: null }), { items: [], next: null });
      });
    });

    // --- jobs: the active-job limit ----------------------------------------------------------

    describe('jobs: their targets', () => {
      it('a job is inserted only while its knowledge base and database exist (checked in the insert)', async () => {
        const raw = handle.store;
        const job = fullJob(A, 'targets');
        assert.deepEqual(await raw.insertJob(job, 10), { ok: false, reason: 'kb_missing' });
        assert.equal(await raw.insertKnowledgeBase(kbRecord(A, job.kbName)), 'ok');
        assert.deepEqual(await raw.insertJob(job, 10), { ok: false, reason: 'database_missing' });
        assert.equal(await raw.insertDatabase(dbRecord(A, job.databaseName)), 'ok');
        assert.deepEqual(await raw.insertJob(job, 10), { ok: true });
        // Another account's knowledge base of that name does not count.
        assert.deepEqual(await raw.insertJob(fullJob(B, 'targets'), 10), { ok: false, reason: 'kb_missing' });
      });

      it('a knowledge base or database a job uses is not deleted (checked in the delete)', async () => {
        const job = fullJob(A, 'user');
        await insertJobs([job]);
        assert.equal(await store.deleteKnowledgeBase(A, job.kbName), false);
        assert.equal(await store.deleteDatabase(A, job.databaseName), false);
        assert.ok(await store.getKnowledgeBase(A, job.kbName));
        assert.ok(await store.getDatabase(A, job.databaseName));
        assert.equal(await store.deleteJob(job.id), true);
        assert.equal(await store.deleteKnowledgeBase(A, job.kbName), true);
        assert.equal(await store.deleteDatabase(A, job.databaseName), true);
        assert.equal(await store.deleteDatabase(A, job.databaseName), false, 'gone: nothing to delete');
      });
    });

    describe('jobs: the active-job limit', () => {
      it('scheduled, running and paused jobs count; completed and failed do not', async () => {
        await insertJobs(
          (['completed', 'failed', 'completed', 'failed'] as const).map((status, i) =>
            sparseJob(A, `done_${i}`, { status }),
          ),
          2,
        );
        assert.equal(await store.countActiveJobs(A), 0);
        assert.deepEqual(await store.insertJob(fullJob(A, 's', { status: 'scheduled' }), 3), { ok: true });
        assert.deepEqual(await store.insertJob(fullJob(A, 'r', { status: 'running' }), 3), { ok: true });
        assert.deepEqual(await store.insertJob(fullJob(A, 'p', { status: 'paused', nextRunMs: null }), 3), {
          ok: true,
        });
        assert.equal(await store.countActiveJobs(A), 3);
        for (const status of ['scheduled', 'running', 'paused'] as const) {
          const extra = fullJob(A, `extra_${status}`, { status });
          assert.deepEqual(await store.insertJob(extra, 3), { ok: false, reason: 'limit' }, status);
          assert.equal(await store.getJobById(extra.id), null, 'a refused job is not stored');
        }
        // A higher limit lets it in; the limit is the caller's, per call.
        assert.deepEqual(await store.insertJob(fullJob(A, 'fourth'), 4), { ok: true });
        assert.equal(await store.countActiveJobs(A), 4);
      });

      it('mutateJob with maxActive refuses to re-activate a job at the limit, atomically', async () => {
        await insertJobs([fullJob(A, 'live'), sparseJob(A, 'dead', { status: 'failed' })], 2);
        const dead = (await store.getJob(A, 'dead'))!;
        await assert.rejects(
          store.mutateJob(dead.id, (j) => ({ ...j, status: 'scheduled' }), undefined, { maxActive: 1 }),
          (e: unknown) => e instanceof ActiveJobLimitError,
        );
        assert.equal((await store.getJobById(dead.id))!.status, 'failed', 'nothing written');
        // Changes that do not activate pass, and so does activation under a higher limit.
        assert.ok(await store.mutateJob(dead.id, (j) => ({ ...j, statusReason: 'x' }), undefined, { maxActive: 1 }));
        const live = (await store.getJob(A, 'live'))!;
        assert.ok(await store.mutateJob(live.id, (j) => ({ ...j, status: 'paused' }), undefined, { maxActive: 1 }));
        assert.equal((await store.mutateJob(dead.id, (j) => ({ ...j, status: 'scheduled' }), undefined, { maxActive: 2 }))!.status, 'scheduled');
      });

      it('the limit is per account', async () => {
        await insertJobs([fullJob(A, 'a1'), fullJob(A, 'a2')], 2);
        assert.deepEqual(await store.insertJob(fullJob(A, 'a3'), 2), { ok: false, reason: 'limit' });
        assert.deepEqual(await store.insertJob(fullJob(B, 'b1'), 2), { ok: true });
        assert.deepEqual(await store.insertJob(fullJob(B, 'b2'), 2), { ok: true });
        assert.equal(await store.countActiveJobs(A), 2);
        assert.equal(await store.countActiveJobs(B), 2);
        assert.equal(await store.countActiveJobs('acct_nobody'), 0);
      });

      it('a job leaving the active statuses frees its slot', async () => {
        const a1 = fullJob(A, 'a1');
        await insertJobs([a1, fullJob(A, 'a2')], 2);
        assert.deepEqual(await store.insertJob(fullJob(A, 'a3'), 2), { ok: false, reason: 'limit' });
        await store.mutateJob(a1.id, (j) => ({ ...j, status: 'completed', nextRunMs: null }));
        assert.equal(await store.countActiveJobs(A), 1);
        assert.deepEqual(await store.insertJob(fullJob(A, 'a3'), 2), { ok: true });
        assert.equal(await store.deleteJob(a1.id), true);
        assert.deepEqual(await store.insertJob(fullJob(A, 'a4'), 2), { ok: false, reason: 'limit' });
      });

      it('concurrent inserts never exceed the limit', async () => {
        await insertJobs([fullJob(A, 'existing')]);
        const attempts = Array.from({ length: 24 }, (_, i) => fullJob(A, `burst_${i}`));
        const outcomes = await Promise.all(attempts.map((j) => store.insertJob(j, 5)));
        assert.equal(outcomes.filter((o) => o.ok).length, 4);
        assert.ok(
          outcomes.every((o) => o.ok || o.reason === 'limit'),
          JSON.stringify(outcomes),
        );
        assert.equal(await store.countActiveJobs(A), 5);
        const stored = await store.listJobs(A, { limit: 100, cursor: null });
        assert.equal(stored.items.length, 5);
        const okIds = attempts.filter((_, i) => outcomes[i]!.ok).map((j) => j.id);
        assert.deepEqual(
          sorted(idsOf(stored.items)),
          sorted([...okIds, stored.items.find((j) => j.name === 'existing')!.id]),
        );
      });

      it('concurrent inserts of one name store exactly one job', async () => {
        const attempts = Array.from({ length: 10 }, (_, i) =>
          fullJob(A, 'same_name', { batchSize: 100 + i }),
        );
        const outcomes = await Promise.all(attempts.map((j) => store.insertJob(j, 100)));
        assert.equal(outcomes.filter((o) => o.ok).length, 1);
        assert.ok(
          outcomes.every((o) => o.ok || o.reason === 'duplicate'),
          JSON.stringify(outcomes),
        );
        const winner = attempts[outcomes.findIndex((o) => o.ok)]!;
        assert.deepEqual(await store.getJob(A, 'same_name'), winner);
        assert.equal(await store.countActiveJobs(A), 1);
      });
    });

    // --- jobs: listing -----------------------------------------------------------------------

    describe('jobs: listing', () => {
      it('pages through an account’s jobs in creation order, without duplicates or gaps', async () => {
        const jobs = Array.from({ length: 23 }, (_, i) => fullJob(A, `job_${String(i).padStart(2, '0')}`));
        await insertJobs(shuffled(jobs));
        await insertJobs([fullJob(B, 'job_b')]);
        const { ids, sizes } = await pageJobs(A, { limit: 5 });
        assert.deepEqual(sizes, [5, 5, 5, 5, 3]);
        assert.deepEqual(ids, idsOf(jobs));
        // One page holding everything has no next page; neither does a page ending at the last job.
        assert.deepEqual(await store.listJobs(A, { limit: 23, cursor: null }), { items: jobs, next: null });
        const first = await store.listJobs(A, { limit: 22, cursor: null });
        assert.notEqual(first.next, null);
        const last = await store.listJobs(A, { limit: 1, cursor: first.next });
        assert.deepEqual(last, { items: [jobs[22]], next: null });
      });

      it('filters by status and by knowledge base, alone and together, while paging', async () => {
        const specs: Array<[JobStatus, string]> = [];
        for (let i = 0; i < 18; i++) {
          specs.push([
            (['scheduled', 'paused', 'completed'] as const)[i % 3]!,
            i % 2 === 0 ? 'kb_even' : 'kb_odd',
          ]);
        }
        const jobs = specs.map(([status, kbName], i) => fullJob(A, `f_${i}`, { status, kbName }));
        await insertJobs(shuffled(jobs));
        await insertJobs([fullJob(B, 'f_b', { status: 'paused', kbName: 'kb_even' })]);

        const expect = (pred: (j: JobRecord) => boolean) => idsOf(jobs.filter(pred));
        assert.deepEqual(
          (await pageJobs(A, { limit: 4, status: 'paused' })).ids,
          expect((j) => j.status === 'paused'),
        );
        assert.deepEqual(
          (await pageJobs(A, { limit: 4, kbName: 'kb_odd' })).ids,
          expect((j) => j.kbName === 'kb_odd'),
        );
        const both = await pageJobs(A, { limit: 2, status: 'completed', kbName: 'kb_even' });
        assert.deepEqual(
          both.ids,
          expect((j) => j.status === 'completed' && j.kbName === 'kb_even'),
        );
        assert.deepEqual(both.sizes, [2, 1]);
        assert.deepEqual((await pageJobs(A, { limit: 4, status: 'failed' })).ids, []);
        assert.deepEqual((await pageJobs(A, { limit: 4, kbName: 'kb_none' })).ids, []);
      });

      it('a cursor still works after the job it points at is deleted, and new jobs come last', async () => {
        const jobs = Array.from({ length: 6 }, (_, i) => fullJob(A, `c_${i}`));
        await insertJobs(jobs);
        const first = await store.listJobs(A, { limit: 3, cursor: null });
        assert.deepEqual(idsOf(first.items), idsOf(jobs.slice(0, 3)));
        assert.ok(first.next);
        assert.equal(await store.deleteJob(jobs[2]!.id), true);
        const late = fullJob(A, 'c_late');
        await insertJobs([late]);
        const rest = await pageJobs(A, { limit: 10 });
        assert.deepEqual(rest.ids, idsOf([...jobs.slice(0, 2), ...jobs.slice(3), late]));
        const second = await store.listJobs(A, { limit: 10, cursor: first.next });
        assert.deepEqual(idsOf(second.items), idsOf([...jobs.slice(3), late]));
        assert.equal(second.next, null);
      });

      it('listJobsWithStatus looks across accounts, in one status, within the limit', async () => {
        const running = [fullJob(A, 'r1', { status: 'running' }), fullJob(B, 'r2', { status: 'running' })];
        const runningMore = fullJob(A, 'r3', { status: 'running' });
        await insertJobs([running[0]!, fullJob(A, 's1'), running[1]!, sparseJob(B, 'c1'), runningMore]);
        assert.deepEqual(
          sorted(idsOf(await store.listJobsWithStatus('running', 10))),
          sorted(idsOf([...running, runningMore])),
        );
        const limited = await store.listJobsWithStatus('running', 2);
        assert.equal(limited.length, 2);
        assert.ok(limited.every((j) => j.status === 'running'));
        assert.equal(new Set(idsOf(limited)).size, 2);
        assert.deepEqual(await store.listJobsWithStatus('failed', 10), []);
        assert.deepEqual(idsOf(await store.listJobsWithStatus('completed', 10)), [
          (await store.getJob(B, 'c1'))!.id,
        ]);
      });
    });

    // --- jobs: update, mutate, delete -------------------------------------------------------

    describe('jobs: update, mutate, delete', () => {
      it('mutateJob replacing the whole record: every query sees the new values', async () => {
        const job = fullJob(A, 'before', { databaseName: 'db_old', kbName: 'kb_old' });
        await insertJobs([job]);
        const next: JobRecord = sparseJob(A, 'after', {
          id: job.id,
          databaseName: 'db_new',
          kbName: 'kb_new',
          status: 'scheduled',
          nextRunMs: T0 - MIN,
          watermark: WM_END,
          statusBeforeRun: 'running',
        });
        assert.ok(await store.mutateJob(next.id, () => next));
        assert.deepEqual(await store.getJobById(job.id), next);
        assert.deepEqual(await store.getJob(A, 'after'), next);
        assert.equal(await store.getJob(A, 'before'), null, 'the old name is gone');
        assert.equal(await store.countJobsUsingDatabase(A, 'db_old'), 0);
        assert.equal(await store.countJobsUsingDatabase(A, 'db_new'), 1);
        assert.equal(await store.countJobsUsingKnowledgeBase(A, 'kb_old'), 0);
        assert.equal(await store.countJobsUsingKnowledgeBase(A, 'kb_new'), 1);
        assert.deepEqual(
          idsOf((await store.listJobs(A, { limit: 5, cursor: null, kbName: 'kb_new' })).items),
          [job.id],
        );
        assert.deepEqual(await store.listDueJobs(T0, 5), [next]);
        assert.equal(await store.nextDueTime(), T0 - MIN);

        assert.ok(await store.mutateJob(next.id, () => ({ ...next, status: 'paused', nextRunMs: null })));
        assert.equal(await store.countActiveJobs(A), 1);
        assert.deepEqual(await store.listDueJobs(T0, 5), []);
        assert.equal(await store.nextDueTime(), null);
        assert.deepEqual(
          idsOf((await store.listJobs(A, { limit: 5, cursor: null, status: 'paused' })).items),
          [job.id],
        );
        assert.deepEqual((await store.countJobsByStatus()).paused, 1);
        assert.equal((await store.countJobsByStatus()).scheduled ?? 0, 0);
      });

      it('mutateJob of a job that is gone answers null and creates nothing', async () => {
        const ghost = fullJob(A, 'ghost');
        assert.equal(await store.mutateJob(ghost.id, () => ghost), null);
        assert.equal(await store.getJobById(ghost.id), null);
        assert.equal(await store.getJob(A, 'ghost'), null);
      });

      it('mutateJob writes what change returns and returns the record as stored', async () => {
        const job = fullJob(A, 'm');
        await insertJobs([job]);
        const returned = await store.mutateJob(job.id, (current) => ({
          ...current,
          status: 'paused',
          nextRunMs: null,
          watermark: WM_END,
          totals: { ...current.totals, rows_read: current.totals.rows_read + 5 },
          kbName: 'kb_moved',
          updatedAt: T0 + 1,
        }));
        const stored = await store.getJobById(job.id);
        assert.ok(stored);
        assert.deepEqual(returned, stored);
        assert.equal(stored.status, 'paused');
        assert.equal(stored.nextRunMs, null);
        assert.deepEqual(stored.watermark, WM_END);
        assert.equal(stored.totals.rows_read, job.totals.rows_read + 5);
        assert.deepEqual(
          {
            ...stored,
            status: job.status,
            nextRunMs: job.nextRunMs,
            watermark: job.watermark,
            totals: job.totals,
            kbName: job.kbName,
            updatedAt: job.updatedAt,
          },
          job,
        );
        // The indexed fields moved with the body.
        assert.deepEqual(
          idsOf((await store.listJobs(A, { limit: 5, cursor: null, status: 'paused' })).items),
          [job.id],
        );
        assert.equal(await store.countJobsUsingKnowledgeBase(A, 'kb_moved'), 1);
        assert.equal(await store.countJobsUsingKnowledgeBase(A, job.kbName), 0);
        assert.equal(await store.nextDueTime(), null);
      });

      it('mutateJob: change returning null leaves the job and returns it as stored', async () => {
        const job = fullJob(A, 'untouched');
        await insertJobs([job]);
        let calls = 0;
        const returned = await store.mutateJob(job.id, () => {
          calls += 1;
          return null;
        });
        assert.equal(calls, 1);
        assert.deepEqual(returned, job);
        assert.deepEqual(await store.getJobById(job.id), job);
      });

      it('mutateJob of a missing job returns null without calling change', async () => {
        let calls = 0;
        const returned = await store.mutateJob(newId('job'), (j) => {
          calls += 1;
          return j;
        });
        assert.equal(returned, null);
        assert.equal(calls, 0);
      });

      it('mutateJob writes the given run in the same call (a checkpoint)', async () => {
        const job = fullJob(A, 'checkpoint', { status: 'running' });
        await insertJobs([job]);
        const run = runRecord(job.id, { watermarkEnd: WM_START, rowsRead: 0 });
        await store.insertRun(run);
        const checkpoint: RunRecord = { ...run, rowsRead: 500, chunksWritten: 900, watermarkEnd: WM_END };
        const returned = await store.mutateJob(
          job.id,
          (current) => ({
            ...current,
            watermark: WM_END,
            totals: { ...current.totals, rows_read: current.totals.rows_read + 500 },
          }),
          checkpoint,
        );
        assert.deepEqual(returned?.watermark, WM_END);
        assert.deepEqual(await store.getRun(job.id, run.id), checkpoint);
        assert.deepEqual((await store.getJobById(job.id))?.watermark, WM_END);

        // The run's status moves too: a run finished through mutateJob is no longer `running`.
        const finished: RunRecord = { ...checkpoint, status: 'succeeded', finishedAt: T0 + MIN };
        await store.mutateJob(job.id, (current) => ({ ...current, status: 'scheduled' }), finished);
        assert.deepEqual(await store.getRun(job.id, run.id), finished);
        assert.deepEqual(await store.listRunningRuns(), []);
      });

      it('mutateJob: a change that throws rejects and writes neither the job nor the run', async () => {
        const job = fullJob(A, 'throws', { status: 'running' });
        await insertJobs([job]);
        const run = runRecord(job.id);
        await store.insertRun(run);
        await assert.rejects(
          store.mutateJob(
            job.id,
            () => {
              throw new Error('change failed');
            },
            { ...run, rowsRead: 999, watermarkEnd: null },
          ),
          /change failed/,
        );
        assert.deepEqual(await store.getJobById(job.id), job);
        assert.deepEqual(await store.getRun(job.id, run.id), run);
      });

      it('concurrent mutateJob calls lose no update', async () => {
        const job = fullJob(A, 'counter', { totals: { ...EMPTY_TOTALS } });
        await insertJobs([job]);
        const n = 40;
        const results = await Promise.all(
          Array.from({ length: n }, () =>
            store.mutateJob(job.id, (current) => ({
              ...current,
              totals: { ...current.totals, rows_read: current.totals.rows_read + 1 },
            })),
          ),
        );
        assert.equal((await store.getJobById(job.id))?.totals.rows_read, n);
        // Each call saw the previous one's write: the returned counts are exactly 1..n.
        const counts = results.map((r) => r?.totals.rows_read ?? -1).sort((a, b) => a - b);
        assert.deepEqual(
          counts,
          Array.from({ length: n }, (_, i) => i + 1),
        );
      });

      it('deleteJob removes the job and its runs, and nothing else', async () => {
        const job = fullJob(A, 'doomed', { status: 'running' });
        const other = fullJob(A, 'survivor', { status: 'running' });
        await insertJobs([job, other]);
        const runs = [runRecord(job.id), runRecord(job.id, { status: 'succeeded', finishedAt: T0 + 1 })];
        const otherRun = runRecord(other.id);
        for (const r of [...runs, otherRun]) await store.insertRun(r);

        assert.equal(await store.deleteJob(job.id), true);
        assert.equal(await store.deleteJob(job.id), false);
        assert.equal(await store.deleteJob(newId('job')), false);
        assert.equal(await store.getJobById(job.id), null);
        assert.equal(await store.getJob(A, 'doomed'), null);
        for (const r of runs) assert.equal(await store.getRun(job.id, r.id), null);
        assert.deepEqual(await store.listRuns(job.id, { limit: 10, cursor: null }), {
          items: [],
          next: null,
        });
        assert.deepEqual(await store.listRunningRuns(), [otherRun]);
        assert.deepEqual(await store.getRun(other.id, otherRun.id), otherRun);
        assert.deepEqual(await store.getJobById(other.id), other);
        // The name is free again.
        assert.deepEqual(await store.insertJob(fullJob(A, 'doomed'), 10), { ok: true });
      });
    });

    // --- jobs: counts ------------------------------------------------------------------------

    describe('jobs: counts', () => {
      it('countJobsByStatus counts every status across accounts', async () => {
        assert.equal(
          Object.values(await store.countJobsByStatus()).reduce((a, b) => a + (b ?? 0), 0),
          0,
        );
        await insertJobs([
          fullJob(A, 's1'),
          fullJob(A, 's2'),
          fullJob(B, 's3'),
          fullJob(A, 'r1', { status: 'running' }),
          fullJob(B, 'p1', { status: 'paused', nextRunMs: null }),
          sparseJob(A, 'c1'),
          sparseJob(B, 'c2'),
          sparseJob(B, 'c3'),
          sparseJob(A, 'f1', { status: 'failed' }),
        ]);
        const counts = await store.countJobsByStatus();
        const got = Object.fromEntries(
          (['scheduled', 'running', 'paused', 'completed', 'failed'] as const).map((s) => [
            s,
            counts[s] ?? 0,
          ]),
        );
        assert.deepEqual(got, { scheduled: 3, running: 1, paused: 1, completed: 3, failed: 1 });
        for (const [status, n] of Object.entries(counts)) {
          assert.equal(typeof n, 'number', `count of ${status} is a number`);
        }
      });

      it('countActiveJobs counts scheduled, running and paused jobs of one account', async () => {
        await insertJobs([
          fullJob(A, 's'),
          fullJob(A, 'r', { status: 'running' }),
          fullJob(A, 'p', { status: 'paused' }),
          sparseJob(A, 'c'),
          sparseJob(A, 'f', { status: 'failed' }),
          fullJob(B, 'b'),
        ]);
        assert.equal(await store.countActiveJobs(A), 3);
        assert.equal(await store.countActiveJobs(B), 1);
        assert.equal(await store.countActiveJobs('acct_nobody'), 0);
      });

      it('counts the jobs using a database or a knowledge base, in any status, per account', async () => {
        await insertJobs([
          fullJob(A, 'j1', { databaseName: 'db1', kbName: 'kb1' }),
          sparseJob(A, 'j2', { databaseName: 'db1', kbName: 'kb2' }),
          fullJob(A, 'j3', { databaseName: 'db2', kbName: 'kb1', status: 'paused' }),
          sparseJob(A, 'j4', { databaseName: 'db1', kbName: 'kb1', status: 'failed' }),
          fullJob(B, 'j5', { databaseName: 'db1', kbName: 'kb1' }),
        ]);
        assert.equal(await store.countJobsUsingDatabase(A, 'db1'), 3);
        assert.equal(await store.countJobsUsingDatabase(A, 'db2'), 1);
        assert.equal(await store.countJobsUsingDatabase(A, 'db3'), 0);
        assert.equal(await store.countJobsUsingDatabase(B, 'db1'), 1);
        assert.equal(await store.countJobsUsingDatabase(B, 'db2'), 0);
        assert.equal(await store.countJobsUsingKnowledgeBase(A, 'kb1'), 3);
        assert.equal(await store.countJobsUsingKnowledgeBase(A, 'kb2'), 1);
        assert.equal(await store.countJobsUsingKnowledgeBase(A, 'kb3'), 0);
        assert.equal(await store.countJobsUsingKnowledgeBase(B, 'kb1'), 1);
        assert.equal(await store.countJobsUsingKnowledgeBase(B, 'kb2'), 0);
      });
    });

    // --- jobs: due -------------------------------------------------------------------------

    describe('jobs: due', () => {
      it('listDueJobs returns scheduled jobs with next_run ≤ now, earliest first, across accounts', async () => {
        const now = T0;
        await insertJobs(
          shuffled([
            fullJob(A, 'due_10', { nextRunMs: now - 10 * MIN }),
            fullJob(B, 'due_30', { nextRunMs: now - 30 * MIN }),
            fullJob(A, 'due_now', { nextRunMs: now }),
            fullJob(B, 'due_1', { nextRunMs: now - 1 }),
            fullJob(A, 'future', { nextRunMs: now + 1 }),
            fullJob(A, 'unscheduled', { nextRunMs: null }),
            fullJob(A, 'paused', { status: 'paused', nextRunMs: now - 100 * MIN }),
            fullJob(B, 'running', { status: 'running', nextRunMs: now - 90 * MIN }),
            sparseJob(A, 'completed', { nextRunMs: now - 80 * MIN }),
            sparseJob(B, 'failed', { status: 'failed', nextRunMs: now - 70 * MIN }),
          ]),
        );
        assert.deepEqual(await dueNames(now, 10), ['due_30', 'due_10', 'due_1', 'due_now']);
        assert.deepEqual(await dueNames(now, 2), ['due_30', 'due_10']);
        assert.deepEqual(await dueNames(now - 1, 10), ['due_30', 'due_10', 'due_1']);
        assert.deepEqual(await dueNames(now - 31 * MIN, 10), []);
        assert.deepEqual(await dueNames(now + DAY, 10), ['due_30', 'due_10', 'due_1', 'due_now', 'future']);
      });

      it('nextDueTime is the earliest next_run of a scheduled job, or null', async () => {
        assert.equal(await store.nextDueTime(), null);
        await insertJobs([
          fullJob(A, 'paused', { status: 'paused', nextRunMs: T0 - DAY }),
          fullJob(A, 'running', { status: 'running', nextRunMs: T0 - DAY }),
          sparseJob(A, 'completed', { nextRunMs: T0 - DAY }),
          fullJob(A, 'unscheduled', { nextRunMs: null }),
        ]);
        assert.equal(await store.nextDueTime(), null, 'only scheduled jobs with a next_run count');
        const later = fullJob(B, 'later', { nextRunMs: T0 + 2 * DAY });
        const sooner = fullJob(A, 'sooner', { nextRunMs: T0 + DAY });
        await insertJobs([later, sooner]);
        const t = await store.nextDueTime();
        assert.equal(t, T0 + DAY);
        assert.equal(typeof t, 'number');
        await store.deleteJob(sooner.id);
        assert.equal(await store.nextDueTime(), T0 + 2 * DAY);
        await store.mutateJob(later.id, (j) => ({ ...j, status: 'paused', nextRunMs: null }));
        assert.equal(await store.nextDueTime(), null);
      });
    });

    // --- runs --------------------------------------------------------------------------------

    describe('runs', () => {
      let job: JobRecord;
      let other: JobRecord;
      beforeEach(async () => {
        job = fullJob(A, 'with_runs', { status: 'running' });
        other = fullJob(B, 'other_runs', { status: 'running' });
        await insertJobs([job, other]);
      });

      it('inserts and gets a run field for field, scoped by job', async () => {
        const run = runRecord(job.id);
        const failed = runRecord(job.id, {
          trigger: 'manual',
          status: 'failed',
          finishedAt: T0 + MIN,
          watermarkStart: null,
          watermarkEnd: null,
          error: { code: 'TABLE_MISSING', message: AWKWARD },
        });
        await store.insertRun(run);
        await store.insertRun(failed);
        assert.deepEqual(await store.getRun(job.id, run.id), run);
        assert.deepEqual(await store.getRun(job.id, failed.id), failed);
        assert.equal(await store.getRun(other.id, run.id), null, 'another job’s run is not found');
        assert.equal(await store.getRun(job.id, newId('run')), null);
      });

      it('updateRun replaces the run; listRunningRuns follows its status', async () => {
        const run = runRecord(job.id);
        await store.insertRun(run);
        assert.deepEqual(await store.listRunningRuns(), [run]);
        const finished: RunRecord = {
          ...run,
          status: 'cancelled',
          finishedAt: T0 + 2 * MIN,
          rowsRead: 2_000_000,
          watermarkEnd: { filter: 'x', key: [] },
          error: { code: 'CANCELLED', message: 'job paused' },
        };
        await store.updateRun(finished);
        assert.deepEqual(await store.getRun(job.id, run.id), finished);
        assert.deepEqual(await store.listRunningRuns(), []);
        assert.deepEqual((await store.listRuns(job.id, { limit: 5, cursor: null })).items, [finished]);
      });

      it('listRuns pages newest first, without duplicates or gaps, per job', async () => {
        const runs = Array.from({ length: 11 }, (_, i) =>
          runRecord(job.id, { status: 'succeeded', startedAt: T0 + i * MIN, finishedAt: T0 + i * MIN + 1 }),
        );
        for (const r of shuffled(runs)) await store.insertRun(r);
        await store.insertRun(runRecord(other.id));
        const newestFirst = idsOf([...runs].reverse());
        const { ids, sizes } = await pageRuns(job.id, 4);
        assert.deepEqual(sizes, [4, 4, 3]);
        assert.deepEqual(ids, newestFirst);
        assert.deepEqual(await store.listRuns(job.id, { limit: 11, cursor: null }), {
          items: [...runs].reverse(),
          next: null,
        });
        const head = await store.listRuns(job.id, { limit: 10, cursor: null });
        assert.ok(head.next);
        assert.deepEqual(await store.listRuns(job.id, { limit: 1, cursor: head.next }), {
          items: [runs[0]],
          next: null,
        });
        assert.deepEqual(await store.listRuns(newId('job'), { limit: 5, cursor: null }), {
          items: [],
          next: null,
        });
      });

      it('listRunningRuns returns running runs across jobs and accounts', async () => {
        const r1 = runRecord(job.id);
        const r2 = runRecord(other.id, { trigger: 'catch_up' });
        await store.insertRun(r1);
        await store.insertRun(runRecord(job.id, { status: 'succeeded', finishedAt: T0 + 1 }));
        await store.insertRun(r2);
        await store.insertRun(
          runRecord(other.id, { status: 'failed', finishedAt: T0 + 1, error: { code: 'X', message: 'y' } }),
        );
        const running = await store.listRunningRuns();
        assert.deepEqual(sorted(idsOf(running)), sorted([r1.id, r2.id]));
        assert.deepEqual(
          running.find((r) => r.id === r2.id),
          r2,
        );
      });
    });

    // --- failed rows --------------------------------------------------------------------------

    describe('failed rows', () => {
      let job: JobRecord;
      let other: JobRecord;
      beforeEach(async () => {
        job = fullJob(A, 'with_failures');
        other = fullJob(B, 'other_failures');
        await insertJobs([job, other]);
      });

      const failure = (docId: string, reason = `too long: ${AWKWARD}`) => ({
        docId,
        key: docId.startsWith('[') ? (JSON.parse(docId) as string[]) : [docId],
        reason,
      });

      async function pageFailures(jobId: string, limit: number): Promise<{ ids: string[]; sizes: number[] }> {
        const ids: string[] = [];
        const sizes: number[] = [];
        let cursor: string | null = null;
        for (let guard = 0; guard < 100; guard++) {
          const page: Awaited<ReturnType<ControlStore['listFailures']>> = await store.listFailures(jobId, {
            limit,
            cursor,
          });
          assert.ok(page.items.length <= limit, 'a page never exceeds the limit');
          ids.push(...page.items.map((f) => f.docId));
          sizes.push(page.items.length);
          if (page.next === null) return { ids, sizes };
          cursor = page.next;
        }
        assert.fail('listFailures cursor never reached the end');
      }

      it('records a failure field for field; none listed or counted before', async () => {
        assert.deepEqual(await store.listFailures(job.id, { limit: 10, cursor: null }), { items: [], next: null });
        assert.equal(await store.countFailures(job.id), 0);
        const composite = JSON.stringify(['7', AWKWARD]);
        await store.recordFailures(job.id, [failure('17'), failure(composite, 'provider refused')], T0);
        assert.deepEqual((await store.listFailures(job.id, { limit: 10, cursor: null })).items, [
          { jobId: job.id, docId: '17', key: ['17'], reason: `too long: ${AWKWARD}`, firstFailedAt: T0, lastFailedAt: T0, attempts: 1 },
          { jobId: job.id, docId: composite, key: ['7', AWKWARD], reason: 'provider refused', firstFailedAt: T0, lastFailedAt: T0, attempts: 1 },
        ].sort((a, b) => (a.docId < b.docId ? -1 : 1)));
        assert.equal(await store.countFailures(job.id), 2);
        assert.equal(await store.countFailures(other.id), 0, 'per job');
        await store.recordFailures(job.id, [], T0);
        assert.equal(await store.countFailures(job.id), 2, 'an empty list records nothing');
      });

      it('recording again counts an attempt, keeps first_failed_at and takes the new reason', async () => {
        await store.recordFailures(job.id, [failure('1', 'first reason'), failure('2')], T0);
        await store.recordFailures(job.id, [failure('1', 'second reason')], T0 + MIN);
        const [one, two] = (await store.listFailures(job.id, { limit: 10, cursor: null })).items;
        assert.deepEqual(one, {
          jobId: job.id,
          docId: '1',
          key: ['1'],
          reason: 'second reason',
          firstFailedAt: T0,
          lastFailedAt: T0 + MIN,
          attempts: 2,
        });
        assert.equal(two?.attempts, 1, 'a failure not recorded again is untouched');
        assert.equal(two?.lastFailedAt, T0);
        assert.equal(typeof one?.lastFailedAt, 'number');
        assert.equal(await store.countFailures(job.id), 2, 'one record per document, however often it fails');
      });

      it('importFailures writes records as they are (times and attempts kept), replacing the same document', async () => {
        const composite = JSON.stringify(['7', AWKWARD]);
        const records = [
          { jobId: job.id, docId: '1', key: ['1'], reason: 'old', firstFailedAt: T0, lastFailedAt: T0 + MIN, attempts: 5 },
          { jobId: job.id, docId: composite, key: ['7', AWKWARD], reason: `too long: ${AWKWARD}`, firstFailedAt: T0 - MIN, lastFailedAt: T0, attempts: 1 },
          { jobId: other.id, docId: '1', key: ['1'], reason: 'elsewhere', firstFailedAt: T0, lastFailedAt: T0, attempts: 2 },
        ];
        await store.recordFailures(job.id, [failure('1', 'replaced')], T0 + 5 * MIN);
        await store.importFailures(records);
        await store.importFailures([]);
        assert.deepEqual(
          (await store.listFailures(job.id, { limit: 10, cursor: null })).items,
          records.filter((r) => r.jobId === job.id).sort((a, b) => (a.docId < b.docId ? -1 : 1)),
        );
        assert.deepEqual((await store.listFailures(other.id, { limit: 10, cursor: null })).items, [records[2]]);
      });

      it('clearFailures deletes the ids present, answers how many, and leaves other jobs alone', async () => {
        await store.recordFailures(job.id, ['1', '2', '3', '4'].map((id) => failure(id)), T0);
        await store.recordFailures(other.id, [failure('2')], T0);
        assert.equal(await store.clearFailures(job.id, ['2', '4', 'not-there']), 2);
        assert.deepEqual(
          (await store.listFailures(job.id, { limit: 10, cursor: null })).items.map((f) => f.docId),
          ['1', '3'],
        );
        assert.equal(await store.countFailures(other.id), 1, 'the same id in another job is kept');
        assert.equal(await store.clearFailures(job.id, ['2', '4']), 0, 'ids not present');
        assert.equal(await store.clearFailures(job.id, []), 0);
        assert.equal(await store.clearFailures(newId('job'), ['1']), 0, 'an unknown job');
        const many = Array.from({ length: 10_000 }, (_, i) => `absent-${i}`);
        assert.equal(await store.clearFailures(job.id, many), 0, '10,000 ids none of which match');
        assert.equal(await store.clearFailures(job.id, [...many, '3', AWKWARD]), 1);
        assert.equal(await store.countFailures(job.id), 1);
      });

      it('listFailures pages in document-id order, without duplicates or gaps', async () => {
        const ids = Array.from({ length: 11 }, (_, i) => `doc-${String(i).padStart(2, '0')}`);
        for (const id of shuffled(ids)) await store.recordFailures(job.id, [failure(id)], T0);
        await store.recordFailures(other.id, [failure('doc-00')], T0);
        const { ids: paged, sizes } = await pageFailures(job.id, 4);
        assert.deepEqual(sizes, [4, 4, 3]);
        assert.deepEqual(paged, ids);
        const head = await store.listFailures(job.id, { limit: 10, cursor: null });
        assert.ok(head.next);
        assert.deepEqual(
          (await store.listFailures(job.id, { limit: 5, cursor: head.next })).items.map((f) => f.docId),
          [ids[10]],
        );
        assert.equal((await store.listFailures(job.id, { limit: 11, cursor: null })).next, null, 'an exact last page');
        assert.deepEqual(await store.listFailures(newId('job'), { limit: 5, cursor: null }), { items: [], next: null });
      });

      it('deleting the job deletes its failures; a deleted job records nothing', async () => {
        await store.recordFailures(job.id, [failure('1'), failure('2')], T0);
        await store.recordFailures(other.id, [failure('1')], T0);
        assert.equal(await store.deleteJob(job.id), true);
        assert.equal(await store.countFailures(job.id), 0);
        assert.deepEqual(await store.listFailures(job.id, { limit: 10, cursor: null }), { items: [], next: null });
        assert.equal(await store.countFailures(other.id), 1);
        await store.recordFailures(job.id, [failure('3')], T0);
        assert.equal(await store.countFailures(job.id), 0);
      });
    });

    // --- webhook deliveries ------------------------------------------------------------------------

    describe('webhook deliveries', () => {
      const delivery = (jobId: string, n: number, over: Partial<WebhookDelivery> = {}): WebhookDelivery => ({
        id: `whd_${String(n).padStart(4, '0')}`,
        jobId,
        event: 'job.failed',
        url: 'https://hooks.example.com/kbsync?x=1',
        payload: JSON.stringify({ event: 'job.failed', text: AWKWARD }),
        status: 'pending',
        attempts: 0,
        lastError: null,
        createdAt: T0 + n,
        deliveredAt: null,
        nextAttemptAt: T0 + n,
        ...over,
      });

      it('round-trip, newest first, paged without gaps; a deleted job queues nothing and loses its deliveries', async () => {
        const job = fullJob(A, 'hooked');
        await insertJobs([job]);
        for (let n = 1; n <= 5; n++) await store.enqueueWebhook(delivery(job.id, n));
        const first = await store.listWebhooks(job.id, { limit: 2, cursor: null });
        assert.deepEqual(first.items, [delivery(job.id, 5), delivery(job.id, 4)]);
        const seen = [...first.items];
        let cursor = first.next;
        while (cursor !== null) {
          const next = await store.listWebhooks(job.id, { limit: 2, cursor });
          seen.push(...next.items);
          cursor = next.next;
        }
        assert.deepEqual(seen.map((d) => d.id), ['whd_0005', 'whd_0004', 'whd_0003', 'whd_0002', 'whd_0001']);
        assert.equal(await store.deleteJob(job.id), true);
        assert.deepEqual(await store.listWebhooks(job.id, { limit: 10, cursor: null }), { items: [], next: null });
        await store.enqueueWebhook(delivery(job.id, 9));
        assert.deepEqual(await store.listWebhooks(job.id, { limit: 10, cursor: null }), { items: [], next: null });
      });

      it('a claim takes due, unclaimed pending deliveries once; only the claimer settles; a lapsed claim is taken again', async () => {
        const job = fullJob(A, 'claimed');
        await insertJobs([job]);
        await store.enqueueWebhook(delivery(job.id, 1));
        await store.enqueueWebhook(delivery(job.id, 2));
        await store.enqueueWebhook(delivery(job.id, 3, { nextAttemptAt: T0 + 10 * MIN }));
        await store.enqueueWebhook(delivery(job.id, 4, { status: 'delivered', deliveredAt: T0 }));
        const now = T0 + MIN;
        // Two claimers at once: each delivery goes to exactly one of them.
        const [a, b] = await Promise.all([store.claimWebhooks('proc_a', now, 30_000, 10), store.claimWebhooks('proc_b', now, 30_000, 10)]);
        assert.deepEqual([...a, ...b].map((d) => d.id).sort(), ['whd_0001', 'whd_0002'], 'due and pending only, each once');
        assert.deepEqual(await store.claimWebhooks('proc_c', now + 1, 30_000, 10), [], 'claimed ones are not claimed again');
        const [mine, owner] = a.length > 0 ? [a[0]!, 'proc_a'] : [b[0]!, 'proc_b'];
        const other = owner === 'proc_a' ? 'proc_b' : 'proc_a';
        const outcome = { status: 'delivered' as const, attempts: 1, lastError: null, deliveredAt: now + 5, nextAttemptAt: now };
        assert.equal(await store.settleWebhook(mine.id, other, outcome), false, 'not the claimer');
        assert.equal(await store.settleWebhook(mine.id, owner, outcome), true);
        const stored = (await store.listWebhooks(job.id, { limit: 10, cursor: null })).items.find((d) => d.id === mine.id);
        assert.deepEqual(stored, { ...mine, ...outcome });
        // The other claim lapses (its process died): another process takes it, the dead one cannot settle.
        const left = [...a, ...b].find((d) => d.id !== mine.id)!;
        const again = await store.claimWebhooks('proc_c', now + 31_000, 30_000, 10);
        assert.deepEqual(again.map((d) => d.id), [left.id]);
        assert.equal(await store.settleWebhook(left.id, owner === 'proc_a' ? 'proc_b' : 'proc_a', { ...outcome, status: 'failed' }), false);
        const retry = { status: 'pending' as const, attempts: 1, lastError: 'HTTP 500', deliveredAt: null, nextAttemptAt: now + 5 * MIN };
        assert.equal(await store.settleWebhook(left.id, 'proc_c', retry), true);
        assert.deepEqual(await store.claimWebhooks('proc_c', now + 2 * MIN, 30_000, 10), [], 'not due yet');
        const due = await store.claimWebhooks('proc_c', now + 10 * MIN, 30_000, 10);
        assert.deepEqual(due.map((d) => d.id), [left.id, 'whd_0003'], 'in due order');
        assert.deepEqual(due[0], { ...left, ...retry });
      });
    });

    // --- leases -------------------------------------------------------------------------------

    describe('leases', () => {
      it('one holder at a time; renewal by the holder; expiry, take-over and release free it', async () => {
        const t0 = 1_000_000;
        assert.deepEqual(await store.acquireLease('sched', 'p1', 1000, t0), { acquired: true, holder: 'p1' });
        assert.deepEqual(await store.acquireLease('sched', 'p2', 1000, t0 + 10), { acquired: false, holder: 'p1' });
        assert.equal((await store.acquireLease('other', 'p2', 1000, t0)).acquired, true, 'names are independent');
        assert.equal((await store.acquireLease('sched', 'p1', 1000, t0 + 900)).acquired, true, 'renewal');
        assert.equal((await store.acquireLease('sched', 'p2', 1000, t0 + 1500)).acquired, false, 'renewed until t0 + 1900');
        assert.equal((await store.acquireLease('sched', 'p2', 1000, t0 + 1900)).acquired, true, 'expired');
        assert.equal((await store.acquireLease('sched', 'p3', 1000, t0 + 2000, 'p1')).acquired, false, 'take-over names the holder');
        assert.equal((await store.acquireLease('sched', 'p3', 1000, t0 + 2000, 'p2')).acquired, true);
        await store.releaseLease('sched', 'p2');
        assert.equal((await store.acquireLease('sched', 'p2', 1000, t0 + 2100)).acquired, false, 'release by a non-holder does nothing');
        await store.releaseLease('sched', 'p3');
        assert.equal((await store.acquireLease('sched', 'p2', 1000, t0 + 2100)).acquired, true);
      });

      it('listLeases answers the live leases whose name starts with the prefix', async () => {
        const t0 = 1_000_000;
        const names = async (prefix: string, now: number) => (await store.listLeases(prefix, now)).map((l) => l.name).sort();
        await store.acquireLease('process:b', 'pb', 1000, t0);
        await store.acquireLease('process:a', 'pa', 500, t0);
        await store.acquireLease('process:%', 'pc', 1000, t0);
        await store.acquireLease('processor', 'px', 1000, t0);
        await store.acquireLease('run:x', 'pa', 1000, t0);
        assert.deepEqual(
          (await store.listLeases('process:', t0 + 100)).sort((x, y) => (x.name < y.name ? -1 : 1)),
          [
            { name: 'process:%', owner: 'pc', expiresAt: t0 + 1000 },
            { name: 'process:a', owner: 'pa', expiresAt: t0 + 500 },
            { name: 'process:b', owner: 'pb', expiresAt: t0 + 1000 },
          ],
        );
        assert.deepEqual(await names('process:', t0 + 500), ['process:%', 'process:b'], 'an expired lease is not listed');
        assert.deepEqual(await names('process:%', t0), ['process:%'], 'the prefix is literal, not a pattern');
        await store.releaseLease('process:b', 'pb');
        assert.deepEqual(await names('process:', t0 + 100), ['process:%', 'process:a']);
        assert.deepEqual(await store.listLeases('nothing:', t0), []);
      });
    });

    // --- accounts and API keys ----------------------------------------------------------------

    describe('accounts and API keys', () => {
      const account = (id: string, name: string, createdAt = T0): AccountRecord => ({ id, name, createdAt });
      const apiKey = (id: string, accountId: string, over: Partial<ApiKeyRecord> = {}): ApiKeyRecord => ({
        id,
        accountId,
        hash: `${id}-hash-${'0'.repeat(40)}`,
        prefix: `kbs_${id.slice(-8)}`,
        createdAt: T0 + 1,
        revokedAt: null,
        ...over,
      });

      it('a fresh store has the account `default` (id and name), which owns what was made without auth', async () => {
        const def = await store.getAccount('default');
        assert.equal(def?.id, 'default');
        assert.equal(def?.name, 'default');
        assert.equal(typeof def?.createdAt, 'number');
        assert.deepEqual(
          (await store.listAccounts()).map((a) => a.id),
          ['default'],
        );
      });

      it('accounts round-trip, are found by id or name, and names are unique', async () => {
        const a = account('acct_a', 'alpha', T0 + 10);
        const b = account('acct_b', `bravo.${'x'.repeat(50)}`, T0 + 20);
        assert.equal(await store.insertAccount(a), 'ok');
        assert.equal(await store.insertAccount(b), 'ok');
        assert.deepEqual(await store.getAccount('acct_a'), a);
        assert.deepEqual(await store.getAccount('alpha'), a);
        assert.deepEqual(await store.getAccount(b.name), b);
        assert.equal(await store.getAccount('nobody'), null);
        assert.equal(await store.insertAccount(account('acct_c', 'alpha')), 'duplicate');
        assert.equal(await store.insertAccount(account('acct_a', 'other')), 'duplicate');
        assert.deepEqual(
          (await store.listAccounts()).filter((x) => x.id !== 'default'),
          [a, b],
        );
      });

      it('an account and its first key are written together, or neither', async () => {
        const k = apiKey('key_1', 'acct_a', { createdAt: DAY * 40_000 });
        assert.equal(await store.insertAccount(account('acct_a', 'alpha'), k), 'ok');
        assert.deepEqual(await store.listApiKeys('acct_a'), [k]);
        assert.deepEqual(await store.findApiKeyByHash(k.hash), k);
        // A duplicate name writes neither the account nor its key.
        const lost = apiKey('key_2', 'acct_x');
        assert.equal(await store.insertAccount(account('acct_x', 'alpha'), lost), 'duplicate');
        assert.equal(await store.findApiKeyByHash(lost.hash), null);
        assert.equal(await store.getAccount('acct_x'), null);
      });

      it('keys are listed per account, found by hash, and revoked once', async () => {
        await store.insertAccount(account('acct_a', 'alpha'));
        await store.insertAccount(account('acct_b', 'bravo'));
        const a1 = apiKey('key_a1', 'acct_a');
        const a2 = apiKey('key_a2', 'acct_a', { createdAt: T0 + 2 });
        const b1 = apiKey('key_b1', 'acct_b');
        for (const k of [a1, a2, b1]) await store.insertApiKey(k);
        assert.deepEqual(await store.listApiKeys('acct_a'), [a1, a2]);
        assert.deepEqual(await store.listApiKeys('acct_b'), [b1]);
        assert.deepEqual(await store.listApiKeys('nobody'), []);
        assert.deepEqual(await store.findApiKeyByHash(b1.hash), b1);
        assert.equal(await store.findApiKeyByHash('no-such-hash'), null);

        // A hash is unique across accounts.
        await assert.rejects(store.insertApiKey(apiKey('key_dup', 'acct_b', { hash: a1.hash })));
        // A key needs an existing account.
        await assert.rejects(store.insertApiKey(apiKey('key_orphan', 'acct_missing')));

        assert.equal(await store.revokeApiKey('acct_b', 'key_a1', T0 + 100), null, "another account's key is not found");
        assert.equal((await store.findApiKeyByHash(a1.hash))?.revokedAt, null);
        assert.deepEqual(await store.revokeApiKey('acct_a', 'key_a1', T0 + 100), { ...a1, revokedAt: T0 + 100 });
        assert.deepEqual(await store.revokeApiKey('acct_a', 'key_a1', T0 + 200), { ...a1, revokedAt: T0 + 100 }, 'the first revocation time stays');
        assert.deepEqual(await store.findApiKeyByHash(a1.hash), { ...a1, revokedAt: T0 + 100 });
        assert.deepEqual(await store.listApiKeys('acct_a'), [{ ...a1, revokedAt: T0 + 100 }, a2]);
        assert.equal(await store.revokeApiKey('acct_a', 'key_none', T0), null);
      });
    });

    // --- lifecycle ---------------------------------------------------------------------------

    describe('lifecycle', () => {
      it('ping resolves on a working store', async () => {
        await store.ping();
        await insertJobs([fullJob(A, 'after_ping')]);
        await store.ping();
      });

      it('close resolves, and closing again is harmless', async () => {
        await store.close();
        await store.close();
      });
    });
  });
}
