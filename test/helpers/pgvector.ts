/**
 * A PostgreSQL database with pgvector for the PostgreSQL store's tests: a fresh database per call
 * (test/helpers/databases.ts), dropped on close. Skips, with the reason, when the server or the
 * extension is missing — except under CI=true, where that is a broken CI and the tests must fail.
 */
import pg from 'pg';
import {
  postgresTestUrl,
  redactUrl,
  serverAvailable,
  type TempDatabase,
  withTempPostgresDatabase,
} from './databases.js';

export { withTempPostgresDatabase };
export type { TempDatabase };

let vectorAvailable: Promise<boolean> | null = null;

async function probeVector(): Promise<boolean> {
  if (!(await serverAvailable('postgres'))) return false;
  const client = new pg.Client({ connectionString: postgresTestUrl(), connectionTimeoutMillis: 3_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'");
    return rows.length > 0;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The `skip` option for a suite needing PostgreSQL with pgvector installable. */
export async function skipUnlessPgvector(): Promise<string | false> {
  vectorAvailable ??= probeVector();
  if (await vectorAvailable) return false;
  if (process.env.CI === 'true') return false;
  return (await serverAvailable('postgres'))
    ? `pgvector is not installed on the PostgreSQL at ${redactUrl(postgresTestUrl())} (run scripts/ci/install-pgvector.sh)`
    : `PostgreSQL not reachable at ${redactUrl(postgresTestUrl())} (set KBSYNC_TEST_PG_URL)`;
}
