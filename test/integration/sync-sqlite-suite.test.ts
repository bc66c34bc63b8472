/**
 * The shared sync suite (test/helpers/sync-sources.ts) on a real SQLite source file: ties across
 * batch boundaries, microsecond timestamps stored as text, every filter column kind SQLite's
 * affinities give, composite keys, updates, a dropped table and NULL filter values.
 */
import { defineSourceSyncSuite, sqliteKit } from '../helpers/sync-sources.js';

await defineSourceSyncSuite(sqliteKit);
