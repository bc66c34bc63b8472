/**
 * The sync run end to end on a real PostgreSQL source (SEMANTICS.md, "Incremental read" and
 * "Write"): ties across batch boundaries, microsecond timestamps and timestamptz, every filter
 * column kind, composite keys, updates, a dropped table and NULL filter values.
 * The suite is shared with MySQL/MariaDB (test/helpers/sync-sources.ts).
 */
import { defineSourceSyncSuite, postgresKit } from '../helpers/sync-sources.js';

await defineSourceSyncSuite(postgresKit);
