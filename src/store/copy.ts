/**
 * `kbsync store copy`: everything of one store (accounts and API keys, databases, knowledge bases
 * with their documents, chunks and vectors, jobs with their watermarks, runs and failed rows)
 * written into another, through the two ports only, so it works between any two backends. Nothing
 * is embedded again: the vectors are copied as stored (VectorStore.exportDocuments), which is the
 * point (re-embedding millions of rows costs days and money).
 *
 * The source is only read. The target must be empty (a fresh store: its `default` account only),
 * so a copy never merges into data it does not own; a copy that fails half-way is started again
 * into a fresh schema. Secrets (database passwords, API keys) are copied as they are stored,
 * encrypted: the target's processes need the source's secret key (KBSYNC_SECRET_KEY, or the
 * source data dir's secret.key).
 *
 * A knowledge base's documents live in its `collection` (its id, or a rebuild's shadow after the
 * swap), copied into a collection of the same name; the knowledge base keeps its `collection` and
 * its latest rebuild record as they are. A rebuild still running or swapping refuses the copy:
 * its shadow is half-filled, and the copy could not carry it.
 */
import { ACTIVE_REBUILD_STATUSES, type AccountRecord, type ControlStore, type JobRecord, type KnowledgeBaseRecord, type Page } from './port.js';
import type { VectorStore } from './vector-port.js';

export interface StorePair {
  control: ControlStore;
  vectors: VectorStore;
}

export interface CopyCounts {
  accounts: number;
  api_keys: number;
  databases: number;
  knowledge_bases: number;
  documents: number;
  chunks: number;
  jobs: number;
  runs: number;
  failures: number;
}

export class StoreCopyError extends Error {
  override name = 'StoreCopyError';
  constructor(
    message: string,
    readonly details: string[] = [],
  ) {
    super(message);
  }
}

export interface CopyOptions {
  /** Documents read and written at a time (default 500). */
  pageSize?: number;
  /** Told after each step and each page of documents (the CLI prints it). */
  onProgress?: (what: string, counts: CopyCounts) => void;
}

const PAGE = 500;

/** Copies `from` into the empty `to`, then counts both sides; throws StoreCopyError when they differ. */
export async function copyStore(from: StorePair, to: StorePair, options: CopyOptions = {}): Promise<CopyCounts> {
  const page = options.pageSize ?? PAGE;
  const tell = (what: string) => options.onProgress?.(what, { ...copied });
  const copied = emptyCounts();

  const running = await from.control.listRunningRuns();
  if (running.length > 0) {
    throw new StoreCopyError('a run is in progress in the source store', [
      `${running.length} run(s) are running: stop kbsync (or wait for the runs to end), then copy again`,
    ]);
  }
  const accounts = await from.control.listAccounts();
  await refuseActiveRebuilds(from.control, accounts);
  await requireEmpty(to.control);

  const targetAccounts = new Map((await to.control.listAccounts()).map((a) => [a.id, a]));
  for (const account of accounts) {
    if (!targetAccounts.has(account.id) && (await to.control.insertAccount(account)) === 'duplicate') {
      throw new StoreCopyError(`account name '${account.name}' is taken in the target store`);
    }
    copied.accounts++;
    for (const key of await from.control.listApiKeys(account.id)) {
      await to.control.insertApiKey(key);
      copied.api_keys++;
    }
  }
  tell('accounts');

  for (const account of accounts) {
    for (const database of await from.control.listDatabases(account.id)) {
      await to.control.insertDatabase(database);
      copied.databases++;
    }
    for (const kb of await from.control.listKnowledgeBases(account.id)) {
      // Read again here: a rebuild started since the check above (kbsync left running) refuses too.
      if (rebuildActive(kb)) throw activeRebuildsError([describeRebuild(kb, account)]);
      await to.control.insertKnowledgeBase(kb);
      copied.knowledge_bases++;
      await copyDocuments(from.vectors, to.vectors, kb.collection, page, copied, () => tell(`knowledge base ${kb.name}`));
    }
  }
  tell('knowledge bases');

  for (const account of accounts) {
    for await (const job of allJobs(from.control, account)) {
      const outcome = await to.control.insertJob(job, Number.MAX_SAFE_INTEGER);
      if (!outcome.ok) throw new StoreCopyError(`job '${job.name}' could not be written: ${outcome.reason}`);
      copied.jobs++;
      for await (const runs of pages((cursor) => from.control.listRuns(job.id, { limit: page, cursor }))) {
        for (const run of runs) await to.control.insertRun(run);
        copied.runs += runs.length;
      }
      for await (const failures of pages((cursor) => from.control.listFailures(job.id, { limit: page, cursor }))) {
        await to.control.importFailures(failures);
        copied.failures += failures.length;
      }
    }
  }
  tell('jobs');

  await verify(from, to, copied);
  return copied;
}

/** Copies one collection into the collection of the same name in `to`. */
async function copyDocuments(
  from: VectorStore,
  to: VectorStore,
  collection: string,
  limit: number,
  copied: CopyCounts,
  tell: () => void,
): Promise<void> {
  let created = false;
  let after: string | null = null;
  do {
    let batch: Awaited<ReturnType<VectorStore['exportDocuments']>>;
    try {
      batch = await from.exportDocuments(collection, { limit, after });
    } catch (err) {
      // A knowledge base whose collection was never made (its first document never came) has nothing to copy.
      if (!created && (err as { code?: string }).code === 'NOT_FOUND') return;
      throw err;
    }
    if (!created) {
      await to.createCollection(collection, batch.dimensions);
      created = true;
    }
    if (batch.documents.length > 0) await to.upsertDocuments(collection, batch.documents);
    copied.documents += batch.documents.length;
    copied.chunks += batch.documents.reduce((n, d) => n + d.chunks.length, 0);
    tell();
    after = batch.next;
  } while (after !== null);
}

const rebuildActive = (kb: KnowledgeBaseRecord): boolean =>
  kb.rebuild !== null && ACTIVE_REBUILD_STATUSES.includes(kb.rebuild.status);

const describeRebuild = (kb: KnowledgeBaseRecord, account: AccountRecord): string =>
  `knowledge base '${kb.name}' of account '${account.name}': rebuild ${kb.rebuild?.status}`;

function activeRebuildsError(details: string[]): StoreCopyError {
  return new StoreCopyError('a knowledge base is being rebuilt in the source store (its new index is only partly built)', [
    ...details,
    'wait for the rebuild to finish (GET /knowledge_bases/{kb} shows its progress) or cancel it (POST /knowledge_bases/{kb}/rebuild/cancel), then copy again',
  ]);
}

/** Refuses the copy while any knowledge base of the source has a rebuild running or swapping. */
async function refuseActiveRebuilds(store: ControlStore, accounts: AccountRecord[]): Promise<void> {
  const active: string[] = [];
  for (const account of accounts) {
    for (const kb of await store.listKnowledgeBases(account.id)) if (rebuildActive(kb)) active.push(describeRebuild(kb, account));
  }
  if (active.length > 0) throw activeRebuildsError(active);
}

/** Every page of a listing that pages with an opaque cursor (Page of port.ts), in order. */
async function* pages<T>(read: (cursor: string | null) => Promise<Page<T>>): AsyncGenerator<T[]> {
  let cursor: string | null = null;
  do {
    const page: Page<T> = await read(cursor);
    yield page.items;
    cursor = page.next;
  } while (cursor !== null);
}

async function* allJobs(store: ControlStore, account: AccountRecord): AsyncGenerator<JobRecord> {
  for await (const jobs of pages((cursor) => store.listJobs(account.id, { limit: PAGE, cursor }))) yield* jobs;
}

/** The target holds nothing but what a fresh store starts with (the `default` account, no keys). */
async function requireEmpty(store: ControlStore): Promise<void> {
  const found: string[] = [];
  for (const account of await store.listAccounts()) {
    if (account.id !== 'default') found.push(`account '${account.name}'`);
    if ((await store.listApiKeys(account.id)).length > 0) found.push(`API keys of '${account.name}'`);
    if ((await store.listDatabases(account.id)).length > 0) found.push(`databases of '${account.name}'`);
    if ((await store.listKnowledgeBases(account.id)).length > 0) found.push(`knowledge bases of '${account.name}'`);
    if ((await store.listJobs(account.id, { limit: 1, cursor: null })).items.length > 0) found.push(`jobs of '${account.name}'`);
  }
  if (found.length > 0) {
    throw new StoreCopyError('the target store is not empty: copy into a fresh store (e.g. a new KBSYNC_STORE_SCHEMA)', found);
  }
}

/** Counts every kind of record on both sides; a difference is an error naming it. */
async function verify(from: StorePair, to: StorePair, copied: CopyCounts): Promise<void> {
  const [a, b] = await Promise.all([countAll(from), countAll(to)]);
  const differences = (Object.keys(a) as Array<keyof CopyCounts>)
    .filter((k) => a[k] !== b[k] || a[k] !== copied[k])
    .map((k) => `${k}: source ${a[k]}, target ${b[k]}, copied ${copied[k]}`);
  if (differences.length > 0) throw new StoreCopyError('the copy does not match the source', differences);
}

export async function countAll(stores: StorePair): Promise<CopyCounts> {
  const counts = emptyCounts();
  for (const account of await stores.control.listAccounts()) {
    counts.accounts++;
    counts.api_keys += (await stores.control.listApiKeys(account.id)).length;
    counts.databases += (await stores.control.listDatabases(account.id)).length;
    for (const kb of await stores.control.listKnowledgeBases(account.id)) {
      counts.knowledge_bases++;
      const kbCounts = await stores.vectors.counts(kb.collection).catch((err: { code?: string }) => {
        if (err.code === 'NOT_FOUND') return { documents: 0, chunks: 0 };
        throw err;
      });
      counts.documents += kbCounts.documents;
      counts.chunks += kbCounts.chunks;
    }
    for await (const job of allJobs(stores.control, account)) {
      counts.jobs++;
      for await (const runs of pages((cursor) => stores.control.listRuns(job.id, { limit: PAGE, cursor }))) {
        counts.runs += runs.length;
      }
      counts.failures += await stores.control.countFailures(job.id);
    }
  }
  return counts;
}

function emptyCounts(): CopyCounts {
  return { accounts: 0, api_keys: 0, databases: 0, knowledge_bases: 0, documents: 0, chunks: 0, jobs: 0, runs: 0, failures: 0 };
}
