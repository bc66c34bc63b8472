/**
 * A source row as the job turns it into a document (core/documents.ts), shared by the sync run
 * and the estimate (sync/estimate.ts) so that both build exactly the same documents.
 */
import { buildRowDocument } from '../core/documents.js';
import { keyHash } from '../core/hash.js';
import type { ColumnKind, SourceRow } from '../sources/port.js';
import type { JobRecord } from '../store/port.js';
import type { SyncedDocument } from './run-sync.js';

/** The row's document with its key hash; null for a row its soft-delete column marks deleted. */
export function rowDocument(
  job: JobRecord,
  kinds: Readonly<Record<string, ColumnKind>>,
  row: SourceRow,
): SyncedDocument | null {
  if (row.markedDeleted === true) return null;
  const doc = buildRowDocument(
    {
      sourceTable: job.sourceTable,
      contentColumns: job.contentColumns,
      metadataColumns: job.metadataColumns,
      filterColumn: job.filterColumn,
      columnKinds: kinds,
    },
    { key: row.position.key, filter: row.position.filter, values: row.values },
  );
  return { ...doc, keyHash: keyHash(row.position.key) };
}

/** Content and metadata columns: what a run reads besides the key and filter columns. */
export function readColumns(job: JobRecord): string[] {
  return [...new Set([...job.contentColumns, ...job.metadataColumns])];
}
