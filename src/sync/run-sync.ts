/**
 * One sync run (SEMANTICS.md, "Incremental read" and "Write"): read the source in keyset order
 * on (filter column, key) in bounded batches, turn rows into documents, upsert them into the
 * knowledge base, and only then advance the watermark (a checkpoint per batch).
 */
import type { Clock } from '../core/clock.js';
import { documentIdFromKey, type RowDocument } from '../core/documents.js';
import { keyHash } from '../core/hash.js';
import { caughtUp, measureLag } from '../core/lag.js';
import type { DatabaseService } from '../databases/service.js';
import {
  type ColumnKind,
  type KeyScopeRequest,
  type KeysetPosition,
  type SourceConnector,
  SourceQueryCancelled,
  type SourceRow,
  SourceTimeoutError,
  type TableInfo,
} from '../sources/port.js';
import type { ControlStore, FailureRecord, JobRecord, KnowledgeBaseRecord, RunRecord } from '../store/port.js';
import type { VectorStore } from '../store/vector-port.js';
import { holdsRun, leaseFor } from '../core/run-lease.js';
import { isTransientSourceError, PermanentSyncError, RunCancelled, RunLeaseLost } from './errors.js';
import {
  addRunUsage,
  addTotalsUsage,
  type BatchUsage,
  BudgetReached,
  type EmbeddingCosts,
  endAtBudget,
  TokenBudget,
} from './budget.js';
import type { LookbackMemory } from './lookback-memory.js';
import { findKeyDifferences, type KeySide } from './reconcile.js';
import { rowDocument } from './row-documents.js';
import { type ProgressOptions, RunProgressReporter } from './run-progress.js';

/** `embeddingTokens`/`embeddingRequests` (BatchUsage): what embedding the batch cost. */
export interface UpsertCounts extends BatchUsage {
  added: number;
  updated: number;
  unchanged: number;
  chunksWritten: number;
  /** Documents of the batch not written, each with why (too long, refused by the provider); the rest were. */
  failed?: Array<{ id: string; reason: string }>;
}

/** A synced row's document, with the hash of its key (delete reconciliation finds it by that). */
export type SyncedDocument = RowDocument & { keyHash?: string };

/** Where documents go: the knowledge-base engine. */
export interface DocumentSink {
  /**
   * Upserts one batch atomically; unchanged content is not re-embedded. `onProgress` is told how
   * many of `docs` are done as the batch is embedded (the run's progress moves inside a batch).
   */
  upsertDocuments(kb: KnowledgeBaseRecord, docs: SyncedDocument[], options?: SinkOptions): Promise<UpsertCounts>;
}

export interface SinkOptions {
  /** Stops the batch's embedding (nothing of it is written). */
  signal?: AbortSignal;
  /** Told how many of the documents are done as the batch is embedded. */
  onProgress?: (documentsDone: number) => void;
  /** Called once the batch needs nothing more from the provider, before anything of it is written. */
  onEmbedded?: () => void;
  /**
   * Awaited after the batch is embedded and before anything of it is written: the run's pipeline
   * embeds batch N+1 while batch N is written and checkpointed, and writes N+1 only after that.
   * When it rejects, nothing of the batch is written and the rejection is thrown.
   */
  beforeWrite?: Promise<void>;
}

/** The knowledge base's side of delete reconciliation (the VectorStore answers it). */
export type KnowledgeBaseKeys = Pick<
  VectorStore,
  'keyHashBuckets' | 'documentIdsInKeyBuckets' | 'documentsWithoutKeyHash' | 'setKeyHashes' | 'deleteDocuments'
>;

export interface SyncOptions {
  /** Re-read the job's failed rows by key before the incremental read (POST /jobs/{job}/failures/retry). */
  retryFailures?: boolean;
  /**
   * Aborted on pause or delete: the source query in flight is cancelled (the run ends cancelled
   * at once when it was reading), and so is a batch being embedded (its sub-batches not started
   * are withdrawn; nothing of the batch is written, and the watermark stays before it). A batch
   * already embedded is written and checkpointed before the run stops.
   */
  stopSource?: AbortSignal;
  /**
   * The run's claim in a fleet (core/run-lease.ts): every checkpoint first checks, in its own
   * transaction, that `owner` still holds the run — if another process took it over, nothing is
   * written and the run stops (RunLeaseLost) — and renews the claim for `ttlMs`. Unset: no check.
   */
  claim?: { owner: string; ttlMs: number };
  /**
   * The run was taken over from a process that died: the same run record goes on from the job's
   * last checkpoint, with the counters it had there, and keeps its `watermark_start`.
   */
  resumed?: boolean;
}

/** Rows re-read by key (failed rows, rows reconciliation found missing) per source query. */
const KEYS_PER_READ = 500;
/** Documents deleted per transaction and checkpoint. */
const DELETES_PER_BATCH = 500;
/**
 * Rows the estimate of a run's total counts at most (sources/estimate.ts): one bounded count per
 * run (measured: 8 to 25 ms for 100,000 index entries); past it, the source's statistics answer.
 */
const ESTIMATE_COUNT_LIMIT = 100_000;

export interface SyncDeps {
  store: ControlStore;
  databases: DatabaseService;
  sink: DocumentSink;
  /** What a batch would embed, asked before writing it when the job has max_tokens_per_run (sync/budget.ts). */
  costs: EmbeddingCosts;
  keys: KnowledgeBaseKeys;
  clock: Clock;
  /** Retries of a failing source read inside the run, with exponential backoff from `retryBaseMs`. */
  readAttempts: number;
  retryBaseMs: number;
  sleep(ms: number): Promise<void>;
  /**
   * Where each job's lookback window starts and how it looked when last read, so a run can skip
   * re-reading an unchanged window (absent: every run re-reads it).
   */
  lookback?: LookbackMemory;
  /** Live progress: how often it is sampled and written (default 1 s), and its clock (tests). */
  progress?: ProgressOptions;
}

/**
 * Executes `run` for the job with id `jobId`. Resolves with the finished run record; permanent
 * failures throw PermanentSyncError, cancellation throws RunCancelled, anything else is transient.
 * The caller records the outcome (jobs/scheduler.ts).
 */
export async function executeSync(
  deps: SyncDeps,
  jobId: string,
  run: RunRecord,
  signal: AbortSignal,
  options: SyncOptions = {},
): Promise<RunRecord> {
  const job = await deps.store.getJobById(jobId);
  if (!job) throw new RunCancelled('job deleted');
  const kb = await deps.store.getKnowledgeBase(job.accountId, job.kbName);
  if (!kb) {
    throw new PermanentSyncError('KB_MISSING', `knowledge base '${job.kbName}' no longer exists: create it again, then resume the job`);
  }
  const database = await deps.store.getDatabase(job.accountId, job.databaseName);
  if (!database) {
    throw new PermanentSyncError('DATABASE_MISSING', `database '${job.databaseName}' is no longer registered: register it again, then resume the job`);
  }
  return deps.databases.withConnector(database, async (connector) => {
    // Shutdown (signal) and pause or delete (options.stopSource) cancel the source query in
    // flight, so a run blocked on a lock ends now, not at its lock timeout.
    const unlink = cancelOnStop(connector, [signal, options.stopSource]);
    // The run itself (its embedding included) stops for both; the caller tells them apart.
    const stop = options.stopSource ? AbortSignal.any([signal, options.stopSource]) : signal;
    try {
      // A run stopped by max_tokens_per_run after its checkpoint ends succeeded (sync/budget.ts).
      return await new SyncRun(deps, job, kb, connector, run, stop, options).execute().catch(endAtBudget(run));
    } finally {
      unlink();
    }
  });
}

/** Cancels the connector's query in flight when one of `stops` aborts; returns the unlinking. */
export function cancelOnStop(connector: SourceConnector, signals: Array<AbortSignal | undefined>): () => void {
  const cancel = () => void connector.cancel().catch(() => undefined);
  const stops = signals.filter((s): s is AbortSignal => s !== undefined);
  for (const s of stops) s.addEventListener('abort', cancel, { once: true });
  if (stops.some((s) => s.aborted)) cancel();
  return () => {
    for (const s of stops) s.removeEventListener('abort', cancel);
  };
}

interface BatchCounts extends UpsertCounts {
  deleted: number;
  /** Rows of the batch written: its first ones when the token budget cut it (sync/budget.ts); absent, all. */
  rows?: number;
  /** The batch in the run's progress (RunProgressReporter.batchProgress), taken out by its checkpoint. */
  batch?: object;
}

/** A batch of readRange's pipeline (SyncRun.startBatch). */
interface PipelinedBatch {
  /** True once the provider is done with the batch; false if the batch failed before that. */
  embedded: Promise<boolean>;
  done: Promise<void>;
}

/** A pipelined batch's gate: the batch before it failed, so this one is not written. */
class EarlierBatchFailed extends Error {
  constructor() {
    super('the batch before this one was not written');
  }
}

const NOTHING: BatchCounts = { added: 0, updated: 0, unchanged: 0, chunksWritten: 0, deleted: 0 };

class SyncRun {
  private job: JobRecord;
  private kinds: Record<string, ColumnKind> = {};
  /** Whether the job may have failed rows to clear (checked once; set when a row fails). */
  private mayHaveFailures = true;
  /** The job's max_tokens_per_run, as the run started (sync/budget.ts). */
  private readonly budget: TokenBudget;
  private readonly progress: RunProgressReporter;
  /**
   * The run's writes of its own record, checkpoints and progress, one after the other: a progress
   * write sends the run as the last checkpoint left it, never older counters after newer ones.
   */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly deps: SyncDeps,
    job: JobRecord,
    private readonly kb: KnowledgeBaseRecord,
    private readonly source: SourceConnector,
    private readonly run: RunRecord,
    private readonly signal: AbortSignal,
    private readonly options: SyncOptions,
  ) {
    this.job = job;
    // A run taken over after a crash goes on with what it had embedded (its record's counters).
    this.budget = new TokenBudget(job.maxTokensPerRun ?? null, run.embeddingTokens ?? 0);
    this.progress = new RunProgressReporter(run, () => this.writeProgress(), deps.progress);
  }

  /**
   * The sync with its live progress; once it ends (however), no progress write is in flight or
   * comes later, and the run's progress is null for the caller's end-of-run write.
   */
  async execute(): Promise<RunRecord> {
    this.progress.start();
    try {
      return await this.sync();
    } finally {
      await this.progress.stop();
      await this.writes;
      this.run.progress = null;
    }
  }

  private async sync(): Promise<RunRecord> {
    // The description read by an earlier run of the pool serves; a query that fails reads it again.
    const table = await this.checkTable(true);
    this.kinds = Object.fromEntries(table.columns.map((c) => [c.name, c.kind]));
    const ref = { schema: table.schema, name: table.name };
    const { filterColumn, keyColumns } = this.job;
    const startJob = this.job;
    this.run.documentsDeleted ??= 0;
    const failures = await this.deps.store.countFailures(this.job.id);
    this.mayHaveFailures = failures > 0;
    const watermark = this.job.watermark;
    const lookbackFrom = watermark && this.job.lookbackSeconds > 0 ? await this.lookbackStart(ref, watermark) : null;
    // One statement: the rows skipped (NULL filter value), the upper bound — fixed now, so a run
    // under constant inserts still ends; rows beyond it are the next run's — whether anything lies
    // past the watermark, and a fingerprint of the lookback window.
    const probe = await this.withRetry(() =>
      this.source.probe({
        table: ref,
        filterColumn,
        keyColumns,
        watermark,
        columns: this.probeColumns(),
        window: lookbackFrom === null ? null : { from: lookbackFrom },
        keys: null,
      }),
    );
    this.run.rowsSkipped = probe.nullFilter;
    // The job's lag as of the probe; recorded with the run's end (scheduler), no write of its own.
    const probedAt = this.deps.clock.now();
    if (probe.oldestPending !== undefined) this.run.lag = measureLag(this.kinds[filterColumn], probe.oldestPending, probedAt);
    const until = probe.max;
    // A resumed run keeps where it first started; its end is the checkpoint it goes on from.
    if (!this.options.resumed) this.run.watermarkStart = watermark;
    this.run.watermarkEnd = watermark;

    if (!this.job.started && !this.job.backfill) {
      // backfill: false — like MindsDB's LAST: the first run only places the watermark, and
      // reconciliation will compare only the rows after it.
      await this.checkpoint(until ?? null, NOTHING, 0, true, { filterColumn, position: until ?? null });
      this.run.lag = caughtUp(probedAt);
      return this.run;
    }
    // Whether the lookback window is read (below): not when its rows are as they were last read.
    const readWindow =
      watermark !== null && lookbackFrom !== null && !this.deps.lookback?.unchanged(startJob, lookbackFrom, probe.window);
    const expected = await this.expectedRows(ref, watermark, probe, {
      failures: this.options.retryFailures ? failures : 0,
      window: readWindow ? (probe.window?.count ?? null) : 0,
    });
    this.progress.setEstimate(expected);
    // Shown at once, before the first batch is embedded (a failed write is not the run's failure).
    if (expected !== null && expected > 0) await this.writeProgress().catch(() => undefined);
    if (this.options.retryFailures && this.mayHaveFailures) await this.retryFailures(table);
    if (until === null) {
      await this.checkpoint(watermark, NOTHING, 0, true);
    } else {
      // Phase 1, lookback: re-read [watermark − lookback, watermark] for rows that committed late
      // with an older filter value. The watermark does not move; unchanged rows cost no embedding.
      // A window whose fingerprint is the one it had when last read and written is not read again:
      // no row entered, left or changed in it since (the fingerprint was taken before that read).
      if (readWindow && watermark && lookbackFrom !== null) {
        const failedBefore = this.run.rowsFailed;
        await this.readRange(table, { atLeast: lookbackFrom }, watermark, false);
        // Rows that failed are tried again by the next run's read, as before.
        if (this.run.rowsFailed === failedBefore) this.deps.lookback?.read(startJob, lookbackFrom, probe.window);
      }
      // Phase 2: everything after the watermark up to the bound, checkpointing each batch.
      if (probe.pastWatermark) await this.readRange(table, watermark ? { after: watermark } : null, until, true);
      // Every row there was at the probe is read (a budget stop never gets here): caught up as of then.
      if (probe.oldestPending !== undefined) this.run.lag = caughtUp(probedAt);
    }
    // Phase 3: documents whose row is gone (an empty table included).
    if ((this.job.deletes ?? 'reconcile') === 'reconcile') await this.reconcile(table);
    return this.run;
  }

  /**
   * Reads [start, until] in keyset batches and writes each, as a pipeline two batches deep: while
   * batch N is written and checkpointed, batch N+1 is read and embedded (the source, the provider
   * and the store each work while the others wait on theirs). Writes and checkpoints still happen
   * one batch after the other and in order, so the watermark only ever covers written rows, and a
   * stop or a failure leaves the batch being embedded unwritten, as when batches ran one at a time.
   * With max_tokens_per_run a batch's admission depends on what the one before cost: one at a time.
   */
  private async readRange(
    table: TableInfo,
    start: { after: KeysetPosition } | { atLeast: string } | null,
    until: KeysetPosition,
    advance: boolean,
  ): Promise<void> {
    let from = start;
    // The batch before the one being read: embedded, written and checkpointed, or being so.
    let previous: PipelinedBatch = { embedded: Promise.resolve(true), done: Promise.resolve() };
    let previousIds = new Set<string>();
    try {
      for (;;) {
        this.throwIfAborted();
        const rows = await this.withRetry(() =>
          this.source.readBatch({
            table: { schema: table.schema, name: table.name },
            columns: this.readColumns(),
            filterColumn: this.job.filterColumn,
            keyColumns: this.job.keyColumns,
            from,
            until,
            limit: this.job.batchSize,
            softDeleteColumn: this.job.softDeleteColumn ?? null,
          }),
        );
        if (rows.length === 0) break;
        const after = from !== null && 'after' in from ? from.after : null;
        if (after !== null && rows.some((r) => samePosition(r.position, after))) {
          // A keyset read must move strictly forward; a source that hands back the position it was
          // asked to start after would make this loop forever (a key type read inexactly).
          throw new PermanentSyncError(
            'KEYSET_STUCK',
            `reading '${this.job.sourceTable}' after position ${JSON.stringify(after)} returned that position again, so the run cannot move forward; a key or filter column's type is not read exactly — report this with the column types, and change filter_column or the key meanwhile`,
          );
        }
        // The provider embeds one batch at a time: this one starts once the one before is embedded
        // (that one is being written and checkpointed meanwhile). A batch that failed before that:
        // this one is not tried.
        if (!(await previous.embedded)) await previous.done;
        // A row read again (its filter value moved forward within the run's bound since the batch
        // before was read) must be judged against what that batch writes: wait for it.
        const ids = rows.map((r) => documentIdFromKey(r.position.key));
        if (ids.some((id) => previousIds.has(id))) await previous.done;
        previousIds = new Set(ids);
        const before = previous.done;
        const batch = this.startBatch(rows, advance, before);
        previous = batch;
        try {
          // At most two batches in flight: the one before is done before the next read.
          await before;
        } catch (err) {
          // This batch never writes (its gate failed); its embedding ends before the run does.
          await batch.done.catch(() => undefined);
          throw err;
        }
        if (this.budget.limited) await batch.done;
        if (rows.length < this.job.batchSize) break;
        from = { after: rows[rows.length - 1]!.position };
      }
    } catch (err) {
      // The batch in flight is written and checkpointed (or fails) before the run stops.
      await previous.done.catch(() => undefined);
      throw err;
    }
    await previous.done;
  }

  /**
   * One batch of readRange: embedded now, written and checkpointed once `before` is. `embedded`
   * settles when the provider is done with it (or the batch ended sooner); `done`, when it is
   * checkpointed, or rejects with why not.
   */
  private startBatch(rows: SourceRow[], advance: boolean, before: Promise<void>): PipelinedBatch {
    // `embedded` is false when the batch failed before it was embedded.
    const gate = before.then(
      () => undefined,
      () => {
        throw new EarlierBatchFailed();
      },
    );
    // The batch before failed: this one's embedding stops at once (it can never be written).
    const givenUp = new AbortController();
    gate.catch(() => givenUp.abort());
    let embedded: () => void = () => undefined;
    const embeddedSignal = new Promise<void>((resolve) => {
      embedded = resolve;
    });
    const done = (async () => {
      const counts = await this.writeRows(rows, {
        beforeWrite: gate,
        onEmbedded: embedded,
        signal: AbortSignal.any([this.signal, givenUp.signal]),
      });
      // With a token budget, only the batch's first rows may have been written: the checkpoint
      // covers those, and the run stops there (sync/budget.ts).
      const kept = counts.rows ?? rows.length;
      const upTo = kept > 0 ? rows[kept - 1]!.position : this.job.watermark;
      await this.checkpoint(advance ? upTo : this.job.watermark, counts, kept, advance && kept > 0);
    })();
    const ended = done.then(
      () => true,
      () => false,
    );
    return { embedded: Promise.race([embeddedSignal.then(() => true), ended]), done };
  }

  /**
   * The rows this run is expected to read: failed rows it retries, the lookback window it
   * re-reads (counted by the probe) and the rows past the watermark up to the run's bound (one
   * bounded estimate query, sources/estimate.ts). Null when unknown: the source cannot estimate,
   * or the query failed (the run goes on; only the total is missing). Rows that reconciliation
   * finds missing are not foreseen: a run that passes its estimate shows no total (core/progress.ts).
   */
  private async expectedRows(
    ref: { schema: string | null; name: string },
    watermark: KeysetPosition | null,
    probe: { max: KeysetPosition | null; pastWatermark: boolean },
    known: { failures: number; window: number | null },
  ): Promise<number | null> {
    if (known.window === null) return null;
    let past = 0;
    if (probe.pastWatermark && probe.max !== null) {
      if (this.source.estimateRows === undefined) return null;
      try {
        const estimate = await this.source.estimateRows({
          table: ref,
          filterColumn: this.job.filterColumn,
          keyColumns: this.job.keyColumns,
          after: watermark,
          until: probe.max,
          limit: ESTIMATE_COUNT_LIMIT,
        });
        past = estimate.rows;
      } catch (err) {
        if (err instanceof SourceQueryCancelled || this.signal.aborted) throw err;
        return null;
      }
    }
    return known.failures + known.window + past;
  }

  /** Runs `write` after the run's writes before it (checkpoints and progress), in order. */
  private serial<T>(write: () => Promise<T>): Promise<T> {
    const done = this.writes.then(write);
    this.writes = done.catch(() => undefined);
    return done;
  }

  /**
   * Writes the run's progress: the run record as the last checkpoint left it, and the job's
   * summary of it (so GET /jobs shows it too); nothing unless the job's current run is this one
   * and, in a fleet, this process still holds it (as a checkpoint checks).
   */
  private writeProgress(): Promise<void> {
    return this.serial(async () => {
      const progress = this.progress.refresh();
      const run = { ...this.run };
      const claim = this.options.claim;
      await this.deps.store.mutateJob(
        this.job.id,
        (current) =>
          current.lastRun?.id === run.id &&
          current.lastRun.status === 'running' &&
          (claim === undefined || holdsRun(current, claim.owner, run.id))
            ? { ...current, lastRun: { ...current.lastRun, progress } }
            : null,
        run,
      );
      this.progress.stored(progress);
    });
  }

  /** Content and metadata columns (key and filter columns are always read). */
  private readColumns(): string[] {
    return [...new Set([...this.job.contentColumns, ...this.job.metadataColumns])];
  }

  /** The columns the probe names besides key and filter: every other column a read uses. */
  private probeColumns(): string[] {
    return probeColumns(this.job);
  }

  /** The lookback window's first filter value: remembered for this watermark, else computed by the source. */
  private async lookbackStart(ref: { schema: string | null; name: string }, watermark: KeysetPosition): Promise<string | null> {
    const known = this.deps.lookback?.start(this.job);
    if (known !== undefined) return known;
    const from = await this.withRetry(() => this.source.lookbackFrom(ref, this.job.filterColumn, watermark.filter, this.job.lookbackSeconds));
    this.deps.lookback?.rememberStart(this.job, from);
    return from;
  }

  /**
   * Turns rows into documents and writes them: soft-deleted rows remove their document, rows
   * that cannot become a document are recorded as failures (the rest are written), and rows
   * written clear their earlier failures.
   */
  private async writeRows(
    batch: SourceRow[],
    pipeline: Pick<SinkOptions, 'beforeWrite' | 'onEmbedded' | 'signal'> = {},
  ): Promise<BatchCounts> {
    const { beforeWrite, onEmbedded } = pipeline;
    const signal = pipeline.signal ?? this.signal;
    // Without max_tokens_per_run, every row; with it, the first rows whose embedding fits what is left.
    const rows = await this.budget.admit(
      batch,
      (row) => rowDocument(this.job, this.kinds, row),
      (docs) => this.deps.costs.embeddingCosts(this.kb, docs),
    );
    const keyOf = new Map<string, string[]>();
    const marked: string[] = [];
    const docs: SyncedDocument[] = [];
    for (const row of rows) {
      const id = documentIdFromKey(row.position.key);
      keyOf.set(id, row.position.key);
      // Null: the soft-delete column marks the row deleted.
      const doc = rowDocument(this.job, this.kinds, row);
      if (doc === null) marked.push(id);
      else docs.push(doc);
    }
    let counts: UpsertCounts;
    // Names this batch in the run's progress until its checkpoint.
    const batchToken = {};
    try {
      const unique = dedupeById(docs);
      // Rows of the batch count as done as its documents are (rows that embed nothing along with them).
      const onProgress = (documentsDone: number) =>
        this.progress.batchProgress(batchToken, Math.floor((rows.length * documentsDone) / unique.length));
      counts = await this.deps.sink.upsertDocuments(this.kb, unique, {
        signal,
        onProgress,
        ...(beforeWrite ? { beforeWrite } : {}),
        ...(onEmbedded ? { onEmbedded } : {}),
      });
      // Also when the sink had nothing to write: what follows writes too (deletes, failures).
      await beforeWrite;
    } catch (err) {
      // The batch before failed: this one was never written and its rows did not fail (one batch
      // at a time, it would not have been tried).
      if (err instanceof EarlierBatchFailed) throw err;
      if (beforeWrite && !(await beforeWrite.then(() => true, () => false))) throw new EarlierBatchFailed();
      // Stopped while the batch was embedded: nothing of it was written, and its rows did not fail.
      this.throwIfAborted();
      // The batch is not written and the watermark stays before it; the run fails with the
      // reason, and the next run retries these rows.
      this.run.rowsFailed += rows.length;
      throw err;
    }
    const deleted = marked.length === 0 ? 0 : await this.deps.keys.deleteDocuments(this.kb.id, [...new Set(marked)]);
    const failed = counts.failed ?? [];
    if (failed.length > 0) {
      this.run.rowsFailed += failed.length;
      this.mayHaveFailures = true;
      await this.deps.store.recordFailures(
        this.job.id,
        failed.map((f) => ({ docId: f.id, key: keyOf.get(f.id) ?? [f.id], reason: f.reason })),
        this.deps.clock.now(),
      );
    }
    if (this.mayHaveFailures) {
      const failedIds = new Set(failed.map((f) => f.id));
      await this.deps.store.clearFailures(this.job.id, [...keyOf.keys()].filter((id) => !failedIds.has(id)));
    }
    return { ...counts, deleted, rows: rows.length, batch: batchToken };
  }

  /** Re-reads the job's failed rows by key and writes them; rows gone from the source are forgotten. */
  private async retryFailures(table: TableInfo): Promise<void> {
    const keys = (await this.failures()).map((f) => f.key);
    for (let i = 0; i < keys.length; i += KEYS_PER_READ) {
      this.throwIfAborted();
      const chunk = keys.slice(i, i + KEYS_PER_READ);
      const rows = await this.readByKeys(table, chunk);
      const found = new Set(rows.map((r) => documentIdFromKey(r.position.key)));
      const gone = chunk.map(documentIdFromKey).filter((id) => !found.has(id));
      if (gone.length > 0) await this.deps.store.clearFailures(this.job.id, gone);
      await this.checkpoint(this.job.watermark, await this.writeRows(rows), rows.length, false);
    }
  }

  private readByKeys(table: TableInfo, keys: string[][], includeNullFilter = false): Promise<SourceRow[]> {
    return this.withRetry(() =>
      this.source.readByKeys({
        table: { schema: table.schema, name: table.name },
        columns: this.readColumns(),
        filterColumn: this.job.filterColumn,
        keyColumns: this.job.keyColumns,
        keys,
        softDeleteColumn: this.job.softDeleteColumn ?? null,
        includeNullFilter,
      }),
    );
  }

  /**
   * Phase 3 (SEMANTICS.md, "Deletes"): compares key-hash buckets of the source and the knowledge
   * base (sync/reconcile.ts), deletes the documents whose row is gone, and writes rows the
   * knowledge base misses (a row re-inserted with an old filter value, a soft-delete mark cleared
   * without touching the filter column, a late row beyond the lookback).
   */
  private async reconcile(table: TableInfo): Promise<void> {
    await this.fillKeyHashes();
    const from = this.job.reconcileFrom;
    // A backfill: false job that started before its start position was recorded: compare every
    // row, but never write the old rows it was told to skip.
    const legacySkip = !this.job.backfill && from === undefined;
    const scope: KeyScopeRequest = {
      table: { schema: table.schema, name: table.name },
      keyColumns: this.job.keyColumns,
      filterColumn: this.job.filterColumn,
      softDeleteColumn: this.job.softDeleteColumn ?? null,
      after: from !== undefined && from.filterColumn === this.job.filterColumn ? from.position : null,
    };
    const keyOfId = new Map<string, string[]>();
    const sourceSide: KeySide = {
      buckets: (digits, within) => this.withRetry(() => this.source.keyBuckets({ ...scope, digits, within })),
      ids: async (buckets) =>
        (await this.withRetry(() => this.source.keysInBuckets({ ...scope, buckets }))).map((key) => {
          const id = documentIdFromKey(key);
          keyOfId.set(id, key);
          return id;
        }),
    };
    const kbSide: KeySide = {
      buckets: (digits, within) => this.deps.keys.keyHashBuckets(this.kb.id, digits, within),
      ids: (buckets) => this.deps.keys.documentIdsInKeyBuckets(this.kb.id, buckets),
    };
    const started = performance.now();
    const diff = await findKeyDifferences(sourceSide, kbSide, { throwIfAborted: () => this.throwIfAborted() });
    this.run.reconcile = {
      rounds: diff.rounds,
      sourceAggregates: diff.sourceAggregates,
      sourceKeys: diff.sourceKeys,
      complete: diff.complete,
      durationMs: Math.round(performance.now() - started),
    };

    for (let i = 0; i < diff.gone.length; i += DELETES_PER_BATCH) {
      this.throwIfAborted();
      const ids = await this.confirmGone(table, diff.gone.slice(i, i + DELETES_PER_BATCH));
      const deleted = await this.deps.keys.deleteDocuments(this.kb.id, ids);
      if (this.mayHaveFailures) await this.deps.store.clearFailures(this.job.id, ids);
      await this.checkpoint(this.job.watermark, { ...NOTHING, deleted }, 0, false);
    }
    if (legacySkip || diff.missing.length === 0) return;
    // Rows that failed wait for POST …/failures/retry instead of being embedded again every run.
    const failing = new Set(this.mayHaveFailures ? (await this.failures()).map((f) => f.docId) : []);
    const keys = diff.missing.filter((id) => !failing.has(id)).map((id) => keyOfId.get(id)!);
    for (let i = 0; i < keys.length; i += KEYS_PER_READ) {
      this.throwIfAborted();
      const rows = await this.readByKeys(table, keys.slice(i, i + KEYS_PER_READ));
      await this.checkpoint(this.job.watermark, await this.writeRows(rows), rows.length, false);
    }
  }

  /**
   * The ids among `candidates` whose row is really gone: looked up by key, so a document is never
   * deleted because the two sides hashed a key differently (that costs a lookup, not a row). A
   * soft-deleted row counts as gone; a row whose filter value became NULL does not; an id that
   * is not a key of this table is kept.
   */
  private async confirmGone(table: TableInfo, candidates: string[]): Promise<string[]> {
    const keyed = candidates.flatMap((id) => {
      const key = keyFromDocumentId(id, this.job.keyColumns.length);
      return key === null ? [] : [{ id, key }];
    });
    if (keyed.length === 0) return [];
    const alive = new Set(
      (await this.readByKeys(table, keyed.map((k) => k.key), true))
        .filter((row) => row.markedDeleted !== true)
        .map((row) => documentIdFromKey(row.position.key)),
    );
    return keyed.filter((k) => !alive.has(k.id)).map((k) => k.id);
  }

  /** Every failed row of the job (a list the user is asked to look at, so not a large one). */
  private async failures(): Promise<FailureRecord[]> {
    const all: FailureRecord[] = [];
    let cursor: string | null = null;
    do {
      const page = await this.deps.store.listFailures(this.job.id, { limit: 1000, cursor });
      all.push(...page.items);
      cursor = page.next;
    } while (cursor !== null);
    return all;
  }

  /** Documents synced before key hashes were stored get theirs, from their id (once per document). */
  private async fillKeyHashes(): Promise<void> {
    let after: string | null = null;
    for (;;) {
      const ids = await this.deps.keys.documentsWithoutKeyHash(this.kb.id, this.job.sourceTable, { after, limit: 1000 });
      const hashes = ids.flatMap((id) => {
        const key = keyFromDocumentId(id, this.job.keyColumns.length);
        return key === null ? [] : [{ id, keyHash: keyHash(key) }];
      });
      if (hashes.length > 0) await this.deps.keys.setKeyHashes(this.kb.id, hashes);
      if (ids.length < 1000) return;
      after = ids[ids.length - 1]!;
    }
  }

  /**
   * Records a batch: the watermark (only now that the documents are durable), the run's counters
   * and the job's totals, in one transaction. A pause or delete seen here stops the run.
   */
  private checkpoint(
    watermark: KeysetPosition | null,
    counts: BatchCounts,
    rowsRead: number,
    advance: boolean,
    reconcileFrom?: JobRecord['reconcileFrom'],
  ): Promise<void> {
    // After a progress write in flight, so that one never lands after this checkpoint's counters.
    return this.serial(() => this.writeCheckpoint(watermark, counts, rowsRead, advance, reconcileFrom));
  }

  private async writeCheckpoint(
    watermark: KeysetPosition | null,
    counts: BatchCounts,
    rowsRead: number,
    advance: boolean,
    reconcileFrom: JobRecord['reconcileFrom'] | undefined,
  ): Promise<void> {
    const r = this.run;
    r.rowsRead += rowsRead;
    r.documentsAdded += counts.added;
    r.documentsUpdated += counts.updated;
    r.documentsUnchanged += counts.unchanged;
    r.documentsDeleted = (r.documentsDeleted ?? 0) + counts.deleted;
    r.chunksWritten += counts.chunksWritten;
    addRunUsage(r, counts);
    if (advance) r.watermarkEnd = watermark;
    // The checkpoint carries the progress too, the batch's rows now in rows_read.
    // A checkpoint of no batch (reconciliation's deletes, the first run's watermark) takes none out.
    const progress = this.progress.refresh(counts.batch);
    let stop = false;
    let stale = false;
    let lost = false;
    const claim = this.options.claim;
    const stored = await this.deps.store.mutateJob(this.job.id, (current) => {
      // Taken over by another process (this one stalled): that process goes on from the last
      // checkpoint; this one writes nothing more.
      lost = claim !== undefined && !holdsRun(current, claim.owner, r.id);
      if (lost) return null;
      // A run works on the configuration it started with: if that changed, it writes nothing more
      // (neither this batch's watermark nor its counters) and stops.
      stale = (current.configVersion ?? 0) !== (this.job.configVersion ?? 0);
      if (stale) return null;
      stop = current.status === 'paused';
      const totals = { ...current.totals };
      totals.rows_read += rowsRead;
      totals.documents_added += counts.added;
      totals.documents_updated += counts.updated;
      totals.documents_unchanged += counts.unchanged;
      totals.documents_deleted = (totals.documents_deleted ?? 0) + counts.deleted;
      totals.chunks_written += counts.chunksWritten;
      addTotalsUsage(totals, counts);
      return {
        ...current,
        watermark: advance ? watermark : current.watermark,
        started: current.started || advance,
        ...(reconcileFrom !== undefined ? { reconcileFrom } : {}),
        ...(current.lastRun?.id === r.id ? { lastRun: { ...current.lastRun, progress } } : {}),
        ...(claim !== undefined ? { runLease: leaseFor(claim.owner, Date.now(), claim.ttlMs) } : {}),
        totals,
        updatedAt: this.deps.clock.now(),
      };
    }, r);
    if (!stored) throw new RunCancelled('job deleted');
    if (lost) throw new RunLeaseLost('another process took this run over');
    if (stale) throw new RunCancelled("the job's configuration changed; the next run uses the new one");
    this.progress.stored(progress);
    // Only what this run itself wrote is taken back: the rest of the job stays as the run started.
    this.job = { ...this.job, watermark: stored.watermark, started: stored.started, reconcileFrom: stored.reconcileFrom };
    if (stop) throw new RunCancelled('job paused');
    // The batch that reached max_tokens_per_run is checkpointed: the run ends here (executeSync).
    if (this.budget.reached) throw new BudgetReached();
  }

  /**
   * The table and every column the job names must still exist; otherwise the job cannot heal by
   * waiting. `cached`: a description the pool read earlier may answer (SourceConnector.describeTable).
   */
  private async checkTable(cached = false): Promise<TableInfo> {
    const ref = { schema: this.job.tableSchema, name: this.job.tableName };
    let table = await this.withRetry(() => this.source.describeTable(ref, { cached }), false);
    // A cached description that lacks the table or a column is read again before the job fails.
    if (cached && (table === null || missingColumns(this.job, table).length > 0)) {
      table = await this.withRetry(() => this.source.describeTable(ref), false);
    }
    if (!table) {
      throw new PermanentSyncError(
        'TABLE_MISSING',
        `source table '${this.job.sourceTable}' no longer exists: restore it (or delete this job), then resume the job`,
      );
    }
    const missing = missingColumns(this.job, table);
    if (missing.length > 0) {
      throw new PermanentSyncError(
        'COLUMN_MISSING',
        `${missing.map(([kind, c]) => `${kind} '${c}'`).join(', ')} no longer exist${missing.length === 1 ? 's' : ''} in '${this.job.sourceTable}': restore ${missing.length === 1 ? 'it' : 'them'} or PATCH the job's columns, then resume the job`,
      );
    }
    return table;
  }

  /**
   * Retries transient source errors with exponential backoff. A read that fails for good may mean
   * the table or a column went away or changed under us (the description was cached): the
   * description is read again — a missing table or column fails the job with what to fix — and
   * the read is tried once more with it before the run fails.
   */
  private async withRetry<T>(fn: () => Promise<T>, recheckSchema = true): Promise<T> {
    let rechecked = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof PermanentSyncError || err instanceof RunCancelled) throw err;
        if (isTransientSourceError(err) && attempt < this.deps.readAttempts) {
          this.throwIfAborted();
          await this.deps.sleep(this.deps.retryBaseMs * 2 ** (attempt - 1) * (0.5 + Math.random()));
          continue;
        }
        // A timeout or a cancel says nothing about the schema.
        if (recheckSchema && !rechecked && !(err instanceof SourceTimeoutError) && !(err instanceof SourceQueryCancelled)) {
          rechecked = true;
          const table = await this.checkTable().catch((e) => (e instanceof PermanentSyncError ? Promise.reject(e) : null));
          if (table !== null) {
            this.kinds = Object.fromEntries(table.columns.map((c) => [c.name, c.kind]));
            this.throwIfAborted();
            continue;
          }
        }
        throw err;
      }
    }
  }

  private throwIfAborted(): void {
    if (this.signal.aborted) throw new RunCancelled('stopped');
  }
}

/** The columns a job names that `table` no longer has, each with what the job uses it for. */
export function missingColumns(job: JobRecord, table: TableInfo): Array<[string, string]> {
  const names = new Set(table.columns.map((c) => c.name));
  const wanted: Array<[string, string]> = [
    ...job.contentColumns.map((c) => ['content column', c] as [string, string]),
    ...job.metadataColumns.map((c) => ['metadata column', c] as [string, string]),
    ['filter column', job.filterColumn],
    ...job.keyColumns.map((c) => ['key column', c] as [string, string]),
    ...(job.softDeleteColumn ? [['soft-delete column', job.softDeleteColumn] as [string, string]] : []),
  ];
  return wanted.filter(([, c]) => !names.has(c));
}

/** The columns a probe names besides key and filter (SourceConnector.probe): every other column a run reads. */
export function probeColumns(job: JobRecord): string[] {
  return [...new Set([...job.contentColumns, ...job.metadataColumns, ...(job.softDeleteColumn ? [job.softDeleteColumn] : [])])];
}

/**
 * A batch can hold the same document twice only if a key repeats (never for a real primary
 * key); keep the last so an upsert batch has unique ids.
 */
function dedupeById<T extends RowDocument>(docs: T[]): T[] {
  const byId = new Map<string, T>();
  for (const doc of docs) byId.set(doc.id, doc);
  return byId.size === docs.length ? docs : [...byId.values()];
}

function samePosition(a: KeysetPosition, b: KeysetPosition): boolean {
  return a.filter === b.filter && a.key.length === b.key.length && a.key.every((k, i) => k === b.key[i]);
}

/** The key texts a synced document's id was made from (core/documents.ts documentIdFromKey). */
function keyFromDocumentId(id: string, keyCount: number): string[] | null {
  if (keyCount === 1) return [id];
  try {
    const parts: unknown = JSON.parse(id);
    return Array.isArray(parts) && parts.length === keyCount && parts.every((p) => typeof p === 'string') ? parts : null;
  } catch {
    return null;
  }
}
