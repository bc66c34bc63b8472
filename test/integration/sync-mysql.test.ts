/**
 * The sync run end to end on a real MySQL/MariaDB source (SEMANTICS.md, "Incremental read" and
 * "Write"): ties across batch boundaries, DATETIME(6)/TIMESTAMP(6) microseconds, every filter
 * column kind, composite keys, updates, a dropped table and NULL filter values.
 * The suite is shared with PostgreSQL (test/helpers/sync-sources.ts).
 */
import { defineSourceSyncSuite, mysqlKit } from '../helpers/sync-sources.js';

await defineSourceSyncSuite(mysqlKit);
