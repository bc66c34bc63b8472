/**
 * The job's lag measured on request (GET /jobs/{job}, API.md "Cost and freshness"): one source
 * statement — the probe a run starts with, asked for nothing but its bound, NULL count and the
 * first row past the watermark, all index-backed — under the source's statement and lock
 * timeouts, cancelled when the client goes away. Read-only: nothing is written to the store (a
 * GET changes nothing); the stored measurement (the last run's or check's) is what
 * `GET /jobs?stale_after=` and /metrics use.
 */
import { type LagMeasurement, measureLag } from '../core/lag.js';
import type { DatabaseService } from '../databases/service.js';
import type { ControlStore, JobRecord } from '../store/port.js';
import { cancelOnStop, missingColumns } from '../sync/run-sync.js';

/**
 * A fresh measurement, or null when it cannot be taken now (the job never ran, its database or
 * table is gone, the source failed or timed out, the client left): the caller shows the stored one.
 */
export async function measureLagNow(
  store: ControlStore,
  databases: DatabaseService,
  job: JobRecord,
  signal: AbortSignal | undefined,
  now: () => number,
): Promise<LagMeasurement | null> {
  // Before the first run there is no watermark to be behind of (and a backfill: false job has read nothing).
  if (!job.started) return null;
  const database = await store.getDatabase(job.accountId, job.databaseName);
  if (database === null) return null;
  try {
    return await databases.withConnector(database, async (source) => {
      const unlink = cancelOnStop(source, [signal]);
      try {
        const table = await source.describeTable({ schema: job.tableSchema, name: job.tableName }, { cached: true });
        if (table === null || missingColumns(job, table).length > 0) return null;
        const probe = await source.probe({
          table: { schema: table.schema, name: table.name },
          filterColumn: job.filterColumn,
          keyColumns: job.keyColumns,
          watermark: job.watermark,
          columns: [],
          window: null,
          keys: null,
        });
        if (probe.oldestPending === undefined) return null;
        const kind = table.columns.find((c) => c.name === job.filterColumn)?.kind;
        return measureLag(kind, probe.oldestPending, now());
      } finally {
        unlink();
      }
    });
  } catch {
    // Unreachable, timed out, cancelled: the stored measurement answers, with its measured_at.
    return null;
  }
}
