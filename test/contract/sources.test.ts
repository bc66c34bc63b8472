/**
 * The source-connector contract: one suite, run against PostgreSQL, MySQL/MariaDB and SQLite on
 * real databases. Each test gets a fresh database and drops it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { keyHash, keyHashTerm } from '../../src/core/hash.js';
import { createSourceConnector } from '../../src/sources/factory.js';
import type {
  ColumnKind,
  ConnectionParameters,
  KeysetPosition,
  ReadBatchRequest,
  SourceConnector,
  SourceEngine,
  SourceRow,
  TableRef,
} from '../../src/sources/port.js';
import {
  mysqlTestUrl,
  postgresTestUrl,
  type ServerKind,
  serverAvailable,
  skipUnlessServer,
  type TempDatabase,
  tempSqliteFile,
  unreachableMessage,
  withTempMysqlDatabase,
  withTempPostgresDatabase,
  withTempSqliteDatabase,
} from '../helpers/databases.js';

/** Column types and quoting for writing test tables in one engine's SQL. */
interface TestDialect {
  q(name: string): string;
  ts: string;
  int: string;
  bigint: string;
  text: string;
  /** A text type usable in a primary key (MySQL needs a length). */
  key: string;
  date: string;
  numeric: string;
  bool: string;
}

interface Fixture {
  engine: SourceEngine;
  label: string;
  server: ServerKind | null;
  skip: string | false;
  create(): Promise<TempDatabase>;
  t: TestDialect;
  /** The type name introspection reports for `t.ts`. */
  tsTypeName: string;
  /** Kinds of a table with columns (ts, d, i, n, s, b) of types (ts, date, int, numeric, text, bool). */
  kinds: ColumnKind[];
  /** Connection attempts that must fail with a readable reason; `secret` must not show. */
  badConnections(): { what: string; params: ConnectionParameters; expect: RegExp; secret?: string }[];
  /** Tests that only make sense on some engines. */
  extras(): void;
}

const SECRET = 'Sekr3t-Pa55word';
const dq = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const bq = (name: string): string => `\`${name.replaceAll('`', '``')}\``;

/** A SQL literal for test data (test-controlled values only). */
function lit(v: string | number | bigint | null): string {
  if (v === null) return 'NULL';
  if (typeof v === 'string') return `'${v.replaceAll("'", "''")}'`;
  return String(v);
}

function insert(
  t: TestDialect,
  table: string,
  columns: string[],
  rows: (string | number | bigint | null)[][],
): string {
  const values = rows.map((r) => `(${r.map(lit).join(', ')})`).join(',\n');
  return `INSERT INTO ${t.q(table)} (${columns.map(t.q).join(', ')}) VALUES ${values}`;
}

async function withSource(
  fx: Fixture,
  setup: string[],
  fn: (src: SourceConnector, db: TempDatabase) => Promise<void>,
): Promise<void> {
  const db = await fx.create();
  const src = createSourceConnector(fx.engine, db.params);
  try {
    for (const sql of setup) await db.exec(sql);
    await fn(src, db);
  } finally {
    await src.close();
    await db.close();
  }
}

type Req = Omit<ReadBatchRequest, 'from' | 'limit' | 'until'> & Partial<Pick<ReadBatchRequest, 'until'>>;

/** Pages through a table in batches of `batch`; fails if a page does not advance. */
async function readAll(
  src: SourceConnector,
  req: Req,
  batch: number,
  start: ReadBatchRequest['from'] = null,
): Promise<{ rows: SourceRow[]; batches: number }> {
  const rows: SourceRow[] = [];
  let from = start;
  let batches = 0;
  for (;;) {
    const page = await src.readBatch({ until: null, ...req, from, limit: batch });
    batches++;
    assert.ok(page.length <= batch, 'a batch never exceeds its limit');
    rows.push(...page);
    if (page.length < batch) return { rows, batches };
    from = { after: page.at(-1)!.position };
    assert.ok(batches < 10_000, 'paging does not advance');
  }
}

const posKey = (p: KeysetPosition): string => JSON.stringify([p.filter, ...p.key]);

function contract(fx: Fixture): void {
  const t = fx.t;
  const q = t.q;

  describe(`source contract: ${fx.label}`, { skip: fx.skip }, () => {
    if (fx.server !== null) {
      const kind = fx.server;
      it('test server is reachable (CI fails here instead of skipping)', async () => {
        assert.ok(await serverAvailable(kind), unreachableMessage(kind));
      });
    }

    it('ping succeeds on a reachable database', async () => {
      await withSource(fx, [], async (src) => {
        assert.equal(src.engine, fx.engine);
        await src.ping();
      });
    });

    it('ping failure gives the driver reason, never the password', async () => {
      for (const bad of fx.badConnections()) {
        const src = createSourceConnector(fx.engine, bad.params);
        try {
          await assert.rejects(src.ping(), (err: Error) => {
            assert.ok(err instanceof Error);
            assert.match(err.message, bad.expect, `${bad.what}: ${err.message}`);
            if (bad.secret !== undefined)
              assert.ok(!err.message.includes(bad.secret), `${bad.what} leaks the password`);
            return true;
          });
        } finally {
          await src.close();
        }
      }
    });

    it('creating and closing a connector does not connect', async () => {
      const [first] = fx.badConnections();
      const src = createSourceConnector(fx.engine, first!.params);
      await src.close();
    });

    it('introspects composite keys, spaces, reserved words, mixed case, unique keys and kinds', async () => {
      const setup = [
        // Key order differs from column order on purpose.
        `CREATE TABLE ${q('line_items')} (${q('line_no')} ${t.int} NOT NULL, ${q('order_id')} ${t.int} NOT NULL, ` +
          `${q('sku')} ${t.text}, PRIMARY KEY (${q('order_id')}, ${q('line_no')}))`,
        `CREATE TABLE ${q('Order Items')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('select')} ${t.text}, ${q('ts')} ${t.ts})`,
        `CREATE TABLE ${q('CamelCase')} (${q('Id')} ${t.int} NOT NULL PRIMARY KEY, ${q('UpdatedAt')} ${t.ts} NOT NULL)`,
        `CREATE TABLE ${q('accounts')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('email')} ${t.key} NOT NULL, ` +
          `${q('nick')} ${t.key}, ${q('tenant')} ${t.int} NOT NULL, ${q('code')} ${t.key} NOT NULL, ` +
          `UNIQUE (${q('email')}), UNIQUE (${q('nick')}), UNIQUE (${q('tenant')}, ${q('code')}))`,
        `CREATE TABLE ${q('kinds')} (${q('ts')} ${t.ts}, ${q('d')} ${t.date}, ${q('i')} ${t.int}, ` +
          `${q('n')} ${t.numeric}, ${q('s')} ${t.text}, ${q('b')} ${t.bool})`,
      ];
      await withSource(fx, setup, async (src) => {
        const tables = await src.listTables();
        const names = tables.map((x) => x.name);
        for (const n of ['line_items', 'Order Items', 'CamelCase', 'accounts', 'kinds']) {
          assert.ok(names.includes(n), `listTables has ${n}: ${names.join(', ')}`);
        }
        assert.ok(!names.some((n) => n.startsWith('sqlite_')), 'no internal tables');
        const schema = fx.engine === 'postgres' ? 'public' : null;
        for (const x of tables) assert.equal(x.schema, schema);

        const items = await src.describeTable({ schema, name: 'line_items' });
        assert.ok(items);
        assert.deepEqual(items.primaryKey, ['order_id', 'line_no']);
        assert.deepEqual(
          items.columns.map((c) => [c.name, c.nullable]),
          [
            ['line_no', false],
            ['order_id', false],
            ['sku', true],
          ],
        );
        assert.deepEqual(
          tables.find((x) => x.name === 'line_items'),
          items,
        );

        const spaced = await src.describeTable({ schema, name: 'Order Items' });
        assert.deepEqual(
          spaced?.columns.map((c) => c.name),
          ['id', 'select', 'ts'],
        );
        assert.deepEqual(spaced?.primaryKey, ['id']);

        const camel = await src.describeTable({ schema, name: 'CamelCase' });
        assert.equal(camel?.name, 'CamelCase');
        assert.deepEqual(camel?.primaryKey, ['Id']);
        assert.equal(camel?.columns[1]?.type, fx.tsTypeName);

        const accounts = await src.describeTable({ schema, name: 'accounts' });
        assert.deepEqual(
          [...(accounts?.uniqueKeys ?? [])].sort((a, b) => a.length - b.length),
          [['email'], ['tenant', 'code']],
          'only unique keys whose columns are all NOT NULL',
        );

        const kinds = await src.describeTable({ schema, name: 'kinds' });
        assert.deepEqual(
          kinds?.columns.map((c) => c.kind),
          fx.kinds,
        );
        assert.ok(kinds?.columns.every((c) => c.nullable && c.type.length > 0));
        assert.deepEqual(kinds?.primaryKey, []);
      });
    });

    it('describeTable is exact-name and null for a missing table', async () => {
      await withSource(
        fx,
        [`CREATE TABLE ${q('CamelCase')} (${q('id')} ${t.int} PRIMARY KEY)`],
        async (src) => {
          const schema = fx.engine === 'postgres' ? 'public' : null;
          assert.equal(await src.describeTable({ schema, name: 'no_such_table' }), null);
          assert.equal(await src.describeTable({ schema, name: 'camelcase' }), null);
          assert.equal(await src.describeTable({ schema, name: 'CAMELCASE' }), null);
          assert.ok(await src.describeTable({ schema, name: 'CamelCase' }));
          assert.equal(await src.describeTable({ schema: 'no_such_schema', name: 'CamelCase' }), null);
        },
      );
    });

    it('250 rows sharing one timestamp, read in batches of 30, come back once each, in order', async () => {
      const rows = Array.from({ length: 250 }, (_, i) => [i + 1, '2025-01-01 00:00:00', `row ${i + 1}`]);
      const setup = [
        `CREATE TABLE ${q('events')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('ts')} ${t.ts}, ${q('body')} ${t.text})`,
        insert(t, 'events', ['id', 'ts', 'body'], rows),
      ];
      await withSource(fx, setup, async (src) => {
        const req = {
          table: { schema: null, name: 'events' },
          columns: ['body'],
          filterColumn: 'ts',
          keyColumns: ['id'],
        };
        const { rows: read, batches } = await readAll(src, req, 30);
        assert.equal(batches, 9);
        assert.equal(new Set(read.map((r) => posKey(r.position))).size, 250, 'no position repeats');
        assert.deepEqual(
          read.map((r) => r.position.key[0]),
          rows.map((r) => String(r[0])),
        );
        assert.deepEqual(read[7]?.values.body, 'row 8');
        assert.equal(Number(read[7]?.values.id), 8, 'key columns are read too');
        assert.ok('ts' in (read[0]?.values ?? {}), 'the filter column is read too');
      });
    });

    it('pages a composite key in keyset order, whatever the batch size', async () => {
      // Deterministic pseudo-random data: three filter values, keys (a, b) unique.
      let seed = 7;
      const rand = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const rows: [string, number, string][] = [];
      for (let a = 1; a <= 10; a++) {
        for (const b of ['a', 'b', 'c', 'd', 'e']) rows.push([`2025-03-0${1 + rand(3)} 12:00:00`, a, b]);
      }
      const setup = [
        `CREATE TABLE ${q('pairs')} (${q('ts')} ${t.ts} NOT NULL, ${q('a')} ${t.int} NOT NULL, ${q('b')} ${t.key} NOT NULL, ` +
          `PRIMARY KEY (${q('a')}, ${q('b')}))`,
        insert(t, 'pairs', ['ts', 'a', 'b'], rows),
      ];
      const expected = [...rows]
        .sort((x, y) =>
          x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1] || (x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0),
        )
        .map((r) => JSON.stringify([String(r[1]), r[2]]));
      await withSource(fx, setup, async (src) => {
        const req = {
          table: { schema: null, name: 'pairs' },
          columns: [],
          filterColumn: 'ts',
          keyColumns: ['a', 'b'],
        };
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 1, max: 23 }), async (batch) => {
            const { rows: read } = await readAll(src, req, batch);
            assert.deepEqual(
              read.map((r) => JSON.stringify(r.position.key)),
              expected,
            );
          }),
          { numRuns: 8 },
        );
      });
    });

    it('until is an inclusive upper position, and atLeast an inclusive lower filter value', async () => {
      const rows = [
        [1, '2025-01-01 00:00:01'],
        [2, '2025-01-01 00:00:02'],
        [3, '2025-01-01 00:00:02'],
        [4, '2025-01-01 00:00:02'],
        [5, '2025-01-01 00:00:03'],
        [6, '2025-01-01 00:00:04'],
      ];
      const setup = [
        `CREATE TABLE ${q('ev')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('ts')} ${t.ts})`,
        insert(t, 'ev', ['id', 'ts'], rows),
      ];
      await withSource(fx, setup, async (src) => {
        const base = {
          table: { schema: null, name: 'ev' },
          columns: [],
          filterColumn: 'ts',
          keyColumns: ['id'],
        };
        const all = await src.readBatch({ ...base, from: null, until: null, limit: 100 });
        const ids = (rs: SourceRow[]) => rs.map((r) => Number(r.position.key[0]));
        assert.deepEqual(ids(all), [1, 2, 3, 4, 5, 6]);

        const until = all[2]!.position; // (00:00:02, 3): stops inside a tie
        const bounded = await readAll(src, { ...base, until }, 2);
        assert.deepEqual(ids(bounded.rows), [1, 2, 3]);

        const atLeast = await src.readBatch({
          ...base,
          from: { atLeast: all[1]!.position.filter },
          until: null,
          limit: 100,
        });
        assert.deepEqual(ids(atLeast), [2, 3, 4, 5, 6]);

        const window = await src.readBatch({
          ...base,
          from: { atLeast: all[1]!.position.filter },
          until: all[4]!.position,
          limit: 100,
        });
        assert.deepEqual(ids(window), [2, 3, 4, 5]);

        const after = await src.readBatch({
          ...base,
          from: { after: all[3]!.position },
          until: null,
          limit: 100,
        });
        assert.deepEqual(ids(after), [5, 6]);
        assert.deepEqual(
          await src.readBatch({ ...base, from: { after: all[5]!.position }, until: null, limit: 10 }),
          [],
        );
      });
    });

    it('rows with a NULL filter value are not read, and are counted', async () => {
      const setup = [
        `CREATE TABLE ${q('ev')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('ts')} ${t.ts})`,
        insert(
          t,
          'ev',
          ['id', 'ts'],
          [
            [1, null],
            [2, '2025-01-01 00:00:00'],
            [3, null],
            [4, '2025-01-02 00:00:00'],
            [5, null],
          ],
        ),
      ];
      await withSource(fx, setup, async (src) => {
        const table = { schema: null, name: 'ev' };
        const { rows } = await readAll(
          src,
          { table, columns: [], filterColumn: 'ts', keyColumns: ['id'] },
          1,
        );
        assert.deepEqual(
          rows.map((r) => r.position.key[0]),
          ['2', '4'],
        );
        assert.equal(await src.countNullFilter(table, 'ts'), 3);
        assert.equal(await src.countNullFilter(table, 'id'), 0);
      });
    });

    it('timestamps differing only in microseconds are ordered, never skipped or repeated', async () => {
      const stamps = [
        '2025-01-01 00:00:00.000001',
        '2025-01-01 00:00:00.000002',
        '2025-01-01 00:00:00.000010',
        '2025-01-01 00:00:00.100000',
        '2025-01-01 00:00:00.999999',
      ];
      // Two rows per stamp, inserted in reverse so storage order does not help.
      const rows = stamps.flatMap((s, i) => [
        [s, i * 2 + 1],
        [s, i * 2 + 2],
      ]);
      const setup = [
        `CREATE TABLE ${q('ev')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('ts')} ${t.ts} NOT NULL)`,
        insert(t, 'ev', ['ts', 'id'], [...rows].reverse()),
      ];
      await withSource(fx, setup, async (src) => {
        const req = {
          table: { schema: null, name: 'ev' },
          columns: ['ts'],
          filterColumn: 'ts',
          keyColumns: ['id'],
        };
        for (const batch of [1, 3, 4]) {
          const { rows: read } = await readAll(src, req, batch);
          // PostgreSQL's text form drops trailing zeros of the fraction (.1 for .100000).
          const canon = (s: string) => s.replace(/\.?0+$/, '');
          assert.deepEqual(
            read.map((r) => [canon(r.position.filter), Number(r.position.key[0])]),
            rows.map(([s, id]) => [canon(s as string), id]),
            `batch ${batch}`,
          );
        }
        assert.deepEqual(await src.maxPosition({ schema: null, name: 'ev' }, 'ts', ['id']), {
          filter: '2025-01-01 00:00:00.999999',
          key: ['10'],
        });
      });
    });

    it('integer (beyond 2^53), date, numeric and text filter columns page in their own order', async () => {
      const big = 9007199254740993n; // 2^53 + 1
      const rows = [
        [1, big, '2025-01-02', '10.00', 'banana'],
        [2, -5, '2024-12-31', '2.25', 'apple'],
        [3, big, '2025-01-01', '1.50', 'cherry'],
        [4, 9, '2025-01-01', '-3.00', 'apple'],
        [5, 10, '2025-01-02', '1.50', 'banana'],
        [6, big + 1n, '2025-01-02', '2.25', 'apple'],
        [7, big, '2025-01-01', '10.00', 'date'],
        // 2^53 and 2^53 + 1 are one double: compared as doubles they would tie and repeat.
        [8, big - 1n, '2025-01-03', '0.01', 'apple'],
      ] as const;
      const setup = [
        `CREATE TABLE ${q('f')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('i')} ${t.bigint}, ${q('d')} ${t.date}, ` +
          `${q('n')} ${t.numeric}, ${q('s')} ${t.key})`,
        insert(
          t,
          'f',
          ['id', 'i', 'd', 'n', 's'],
          rows.map((r) => [...r]),
        ),
      ];
      await withSource(fx, setup, async (src) => {
        const table = { schema: null, name: 'f' };
        const check = async <V>(
          col: string,
          order: (r: (typeof rows)[number]) => V,
          norm: (s: string) => V,
        ) => {
          const expected = [...rows]
            .sort((a, b) => {
              const x = order(a);
              const y = order(b);
              return x < y ? -1 : x > y ? 1 : a[0] - b[0];
            })
            .map((r) => [order(r), r[0]]);
          for (const batch of [1, 2, 3]) {
            const { rows: read } = await readAll(
              src,
              { table, columns: [], filterColumn: col, keyColumns: ['id'] },
              batch,
            );
            assert.deepEqual(
              read.map((r) => [norm(r.position.filter), Number(r.position.key[0])]),
              expected,
              `${col}, batch ${batch}`,
            );
          }
        };
        await check(
          'i',
          (r) => BigInt(r[1]),
          (s) => BigInt(s),
        );
        await check(
          'd',
          (r) => r[2],
          (s) => s,
        );
        await check(
          'n',
          (r) => Number(r[3]),
          (s) => Number(s),
        );
        await check(
          's',
          (r) => r[4],
          (s) => s,
        );
        const max = await src.maxPosition(table, 'i', ['id']);
        assert.deepEqual(max, { filter: String(big + 1n), key: ['6'] });
      });
    });

    it('maxPosition is the greatest (filter, key), null when no row has a filter value', async () => {
      const setup = [
        `CREATE TABLE ${q('ev')} (${q('a')} ${t.int} NOT NULL, ${q('b')} ${t.int} NOT NULL, ${q('ts')} ${t.ts}, ` +
          `PRIMARY KEY (${q('a')}, ${q('b')}))`,
        `CREATE TABLE ${q('empty')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('ts')} ${t.ts})`,
        insert(
          t,
          'ev',
          ['a', 'b', 'ts'],
          [
            [1, 9, '2025-01-01 00:00:05'],
            [2, 1, '2025-01-01 00:00:05'],
            [2, 0, '2025-01-01 00:00:05'],
            [9, 9, '2025-01-01 00:00:04'],
            [9, 10, null],
          ],
        ),
      ];
      await withSource(fx, setup, async (src) => {
        const max = await src.maxPosition({ schema: null, name: 'ev' }, 'ts', ['a', 'b']);
        assert.deepEqual(max?.key, ['2', '1']);
        assert.match(max?.filter ?? '', /^2025-01-01 00:00:05(\.0+)?$/);
        assert.equal(await src.maxPosition({ schema: null, name: 'empty' }, 'ts', ['id']), null);
        // A maxPosition is a valid `after`: nothing follows it.
        const rest = await src.readBatch({
          table: { schema: null, name: 'ev' },
          columns: [],
          filterColumn: 'ts',
          keyColumns: ['a', 'b'],
          from: { after: max! },
          until: null,
          limit: 10,
        });
        assert.deepEqual(rest, []);
      });
    });

    it('lookbackFrom computes in the column type and feeds atLeast', async () => {
      const setup = [
        `CREATE TABLE ${q('lb')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('ts')} ${t.ts}, ${q('d')} ${t.date}, ` +
          `${q('i')} ${t.int}, ${q('n')} ${t.numeric}, ${q('s')} ${t.text})`,
        insert(
          t,
          'lb',
          ['id', 'ts'],
          [
            [1, '2025-01-01 00:04:59.999999'],
            [2, '2025-01-01 00:05:00.123456'],
            [3, '2025-01-01 00:07:00.000000'],
            [4, '2025-01-01 00:10:00.123456'],
          ],
        ),
      ];
      await withSource(fx, setup, async (src) => {
        const table: TableRef = { schema: null, name: 'lb' };
        const from = await src.lookbackFrom(table, 'ts', '2025-01-01 00:10:00.123456', 300);
        assert.equal(from, '2025-01-01 00:05:00.123456');
        assert.equal(
          await src.lookbackFrom(table, 'ts', '2025-01-01 00:10:00.123456', 0.5),
          '2025-01-01 00:09:59.623456',
        );
        // PostgreSQL's text form drops a zero fraction; MySQL DATETIME(6) and stored SQLite text keep it.
        assert.match(
          (await src.lookbackFrom(table, 'ts', '2025-01-01 00:03:00.000000', 3600)) ?? '',
          /^2024-12-31 23:03:00(\.000000)?$/,
        );

        const rows = await src.readBatch({
          table,
          columns: [],
          filterColumn: 'ts',
          keyColumns: ['id'],
          from: { atLeast: from! },
          until: null,
          limit: 10,
        });
        assert.deepEqual(
          rows.map((r) => r.position.key[0]),
          ['2', '3', '4'],
        );

        // Whole days, rounded up: the window is never shorter than asked.
        assert.equal(await src.lookbackFrom(table, 'd', '2025-01-01', 300), '2024-12-31');
        assert.equal(await src.lookbackFrom(table, 'd', '2025-01-01', 86_400), '2024-12-31');
        assert.equal(await src.lookbackFrom(table, 'd', '2025-01-01', 86_401), '2024-12-30');
        assert.equal(await src.lookbackFrom(table, 'i', '1000', 300), '700');
        assert.equal(Number(await src.lookbackFrom(table, 'n', '10.50', 300)), -289.5);
        assert.equal(await src.lookbackFrom(table, 's', 'abc', 300), null);
        await assert.rejects(src.lookbackFrom(table, 'ts', '2025-01-01 00:10:00', -1));
      });
    });

    it('rejects unknown identifiers, injection attempts included, and reads odd but real names', async () => {
      const weird = ['select', 'we"ird', 'back`tick', 'Order Items'];
      const setup = [
        `CREATE TABLE ${q('t')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('ts')} ${t.ts}, ` +
          `${weird.map((c) => `${q(c)} ${t.text}`).join(', ')})`,
        insert(t, 't', ['id', 'ts', ...weird], [[1, '2025-01-01 00:00:00', 'S', 'W', 'B', 'O']]),
      ];
      await withSource(fx, setup, async (src) => {
        const table = { schema: null, name: 't' };
        const base: ReadBatchRequest = {
          table,
          columns: ['id'],
          filterColumn: 'ts',
          keyColumns: ['id'],
          from: null,
          until: null,
          limit: 10,
        };
        const attacks = [
          'x"; DROP TABLE t; --',
          'x`; DROP TABLE t; --',
          "x'); DROP TABLE t; --",
          'id) OR (1=1',
          'ID',
        ];
        for (const a of attacks) {
          await assert.rejects(src.readBatch({ ...base, columns: [a] }), /Unknown column/);
          await assert.rejects(src.readBatch({ ...base, filterColumn: a }), /Unknown column/);
          await assert.rejects(src.readBatch({ ...base, keyColumns: [a] }), /Unknown column/);
          await assert.rejects(src.maxPosition(table, a, ['id']), /Unknown column/);
          await assert.rejects(src.countNullFilter(table, a), /Unknown column/);
          await assert.rejects(src.lookbackFrom(table, a, '1', 1), /Unknown column/);
          await assert.rejects(
            src.readBatch({ ...base, table: { schema: null, name: a } }),
            /does not exist/,
          );
        }
        // A value is bound, never spliced: a hostile watermark is only a value that matches nothing.
        const hostile = "2025-01-01'); DROP TABLE t; --";
        await src.readBatch({ ...base, from: { after: { filter: '2024-01-01 00:00:00', key: ['0'] } } });
        await src.readBatch({ ...base, from: { atLeast: hostile } }).catch(() => {});

        const rows = await src.readBatch({ ...base, columns: weird });
        assert.equal(rows.length, 1, 'the table is still there');
        assert.deepEqual(
          weird.map((c) => rows[0]?.values[c]),
          ['S', 'W', 'B', 'O'],
        );
      });
    });

    it('rejects malformed read requests', async () => {
      await withSource(
        fx,
        [`CREATE TABLE ${q('t')} (${q('id')} ${t.int} NOT NULL PRIMARY KEY, ${q('ts')} ${t.ts})`],
        async (src) => {
          const base: ReadBatchRequest = {
            table: { schema: null, name: 't' },
            columns: [],
            filterColumn: 'ts',
            keyColumns: ['id'],
            from: null,
            until: null,
            limit: 10,
          };
          await assert.rejects(src.readBatch({ ...base, limit: 0 }), /limit/);
          await assert.rejects(src.readBatch({ ...base, limit: 1.5 }), /limit/);
          await assert.rejects(
            src.readBatch({ ...base, from: { after: { filter: '2025-01-01', key: [] } } }),
            /key/,
          );
          await assert.rejects(
            src.readBatch({ ...base, until: { filter: '2025-01-01', key: ['1', '2'] } }),
            /key/,
          );
        },
      );
    });

    it('key buckets: the source hashes keys as the knowledge base does (core/hash.ts), within scope', async () => {
      // Composite key with a text part that holds the separator and non-ASCII text.
      const rows: (string | number | null)[][] = [];
      for (let i = 1; i <= 300; i++) {
        rows.push([i % 7, `k:${i}é`, `2025-01-01 00:00:${String(i % 60).padStart(2, '0')}`, i % 10 === 0 ? 1 : 0]);
      }
      // A NULL filter value is never synced, so it is out of every scope.
      rows.push([99, 'null filter', null, 0]);
      const setup = [
        `CREATE TABLE ${q('kh')} (${q('a')} ${t.int} NOT NULL, ${q('b')} ${t.key} NOT NULL, ${q('ts')} ${t.ts}, ${q('gone')} ${t.int}, PRIMARY KEY (${q('a')}, ${q('b')}))`,
        insert(t, 'kh', ['a', 'b', 'ts', 'gone'], rows),
      ];
      await withSource(fx, setup, async (src) => {
        const table: TableRef = { schema: null, name: 'kh' };
        const scope = { table, keyColumns: ['a', 'b'], filterColumn: 'ts', softDeleteColumn: null, after: null };
        const expected = (keep: (r: (string | number | null)[]) => boolean, digits: number) => {
          const agg = new Map<string, { count: number; sum: bigint }>();
          for (const r of rows.filter((r) => r[2] !== null && keep(r))) {
            const h = keyHash([String(r[0]), String(r[1])]);
            const e = agg.get(h.slice(0, digits)) ?? { count: 0, sum: 0n };
            e.count++;
            e.sum += BigInt(keyHashTerm(h));
            agg.set(h.slice(0, digits), e);
          }
          return [...agg].map(([bucket, e]) => ({ bucket, count: e.count, sum: e.sum.toString() })).sort((x, y) => x.bucket.localeCompare(y.bucket));
        };
        const sorted = (b: { bucket: string }[]) => [...b].sort((x, y) => x.bucket.localeCompare(y.bucket));
        assert.deepEqual(await src.keyBuckets({ ...scope, digits: 0, within: null }), expected(() => true, 0));
        assert.deepEqual(sorted(await src.keyBuckets({ ...scope, digits: 2, within: null })), expected(() => true, 2));
        // Within prefixes; with a soft-delete column (every 10th row marked) out of scope.
        const soft = { ...scope, softDeleteColumn: 'gone' };
        const all2 = expected((r) => r[3] === 0, 2);
        const within = [...new Set(all2.map((b) => b.bucket.slice(0, 1)))].slice(0, 3);
        assert.deepEqual(
          sorted(await src.keyBuckets({ ...soft, digits: 2, within })),
          all2.filter((b) => within.includes(b.bucket.slice(0, 1))),
        );
        // The keys of some buckets, and the rows of some keys.
        const buckets = all2.slice(0, 4).map((b) => b.bucket);
        const keys = await src.keysInBuckets({ ...soft, buckets });
        const want = rows
          .filter((r) => r[2] !== null && r[3] === 0 && buckets.includes(keyHash([String(r[0]), String(r[1])]).slice(0, 2)))
          .map((r) => [String(r[0]), String(r[1])]);
        assert.deepEqual(keys.map((k) => JSON.stringify(k)).sort(), want.map((k) => JSON.stringify(k)).sort());
        const read = await src.readByKeys({ table, columns: ['gone'], filterColumn: 'ts', keyColumns: ['a', 'b'], keys: [['3', 'k:3é'], ['0', 'k:70é'], ['9', 'no such key']], softDeleteColumn: 'gone' });
        assert.deepEqual(
          read.map((r) => [r.position.key, r.markedDeleted]).sort(),
          [[['0', 'k:70é'], true], [['3', 'k:3é'], false]],
          'rows by key, each with the soft-delete mark the source computed',
        );
        // After a position (a backfill: false job's start): only later rows.
        const after = { filter: (await src.readBatch({ table, columns: [], filterColumn: 'ts', keyColumns: ['a', 'b'], from: null, until: null, limit: 150 })).at(-1)!.position.filter, key: ['6', 'zzz'] };
        const later = await src.keysInBuckets({ ...scope, after, buckets: [''] });
        assert.ok(later.length > 0 && later.length < rows.length, `${later.length} keys after the position`);
      });
    });

    fx.extras();
  });
}

const pgTarget = new URL(postgresTestUrl());
const mysqlTarget = new URL(mysqlTestUrl());

const postgres: Fixture = {
  engine: 'postgres',
  label: 'postgres',
  server: 'postgres',
  skip: await skipUnlessServer('postgres'),
  create: withTempPostgresDatabase,
  t: {
    q: dq,
    ts: 'timestamp',
    int: 'integer',
    bigint: 'bigint',
    text: 'text',
    key: 'text',
    date: 'date',
    numeric: 'numeric(10,2)',
    bool: 'boolean',
  },
  tsTypeName: 'timestamp without time zone',
  kinds: ['timestamp', 'date', 'integer', 'numeric', 'text', 'boolean'],
  badConnections: () => [
    {
      what: 'wrong port',
      params: { url: `postgres://postgres:${SECRET}@127.0.0.1:1/postgres` },
      expect: /ECONNREFUSED/,
      secret: SECRET,
    },
    {
      what: 'wrong database',
      params: {
        host: pgTarget.hostname,
        port: Number(pgTarget.port || 5432),
        user: decodeURIComponent(pgTarget.username) || 'postgres',
        password: SECRET,
        database: 'kbsync_no_such_db',
      },
      expect: /kbsync_no_such_db.*does not exist|password authentication failed/,
      secret: SECRET,
    },
  ],
  extras() {
    it('postgres: reads every user schema, e.g. sales.orders beside public.orders', async () => {
      const setup = [
        'CREATE SCHEMA sales',
        'CREATE TABLE sales.orders (id int PRIMARY KEY, ts timestamp NOT NULL, total numeric(12,2))',
        'CREATE TABLE public.orders (id int PRIMARY KEY, other text)',
        'CREATE SCHEMA "Mixed Schema"',
        'CREATE TABLE "Mixed Schema"."T" (id int PRIMARY KEY, ts timestamp)',
        "INSERT INTO sales.orders VALUES (1, '2025-01-01 00:00:00', 10.5), (2, '2025-01-01 00:00:01', 3)",
        'INSERT INTO "Mixed Schema"."T" VALUES (1, \'2025-01-01 00:00:00\')',
      ];
      await withSource(postgres, setup, async (src) => {
        const tables = await src.listTables();
        const refs = tables.map((x) => `${x.schema}.${x.name}`);
        for (const r of ['sales.orders', 'public.orders', 'Mixed Schema.T'])
          assert.ok(refs.includes(r), refs.join());
        const sales = await src.describeTable({ schema: 'sales', name: 'orders' });
        assert.deepEqual(
          sales?.columns.map((c) => c.name),
          ['id', 'ts', 'total'],
        );
        assert.equal(sales?.schema, 'sales');
        const pub = await src.describeTable({ schema: null, name: 'orders' });
        assert.equal(pub?.schema, 'public', 'a null schema means public');
        const rows = await src.readBatch({
          table: { schema: 'sales', name: 'orders' },
          columns: ['total'],
          filterColumn: 'ts',
          keyColumns: ['id'],
          from: null,
          until: null,
          limit: 10,
        });
        assert.deepEqual(
          rows.map((r) => r.values.total),
          ['10.50', '3.00'],
        );
        await assert.rejects(
          src.readBatch({
            table: { schema: 'public', name: 'orders' },
            columns: ['total'],
            filterColumn: 'id',
            keyColumns: ['id'],
            from: null,
            until: null,
            limit: 10,
          }),
          /Unknown column/,
        );
        assert.equal(await src.countNullFilter({ schema: 'Mixed Schema', name: 'T' }, 'ts'), 0);
      });
    });

    it('postgres: timestamptz keeps microseconds in a stable UTC text form', async () => {
      const setup = [
        'CREATE TABLE tz (id int PRIMARY KEY, ts timestamptz)',
        // Neither the database's defaults nor the writer's zone may change the reader's text form.
        `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET timezone = %L', current_database(), 'Asia/Tokyo');
           EXECUTE format('ALTER DATABASE %I SET datestyle = %L', current_database(), 'SQL, DMY'); END $$`,
        "SET TIME ZONE 'America/New_York'",
        `INSERT INTO tz VALUES (1, '2025-01-01 02:00:00.000002+02'), (2, '2025-01-01 00:00:00.000001+00'),
           (3, '2025-01-01 02:00:00.000001+02'), (4, '2025-01-01 00:00:00.000002+00')`,
      ];
      await withSource(postgres, setup, async (src) => {
        const info = await src.describeTable({ schema: 'public', name: 'tz' });
        assert.equal(info?.columns[1]?.kind, 'timestamptz');
        const { rows } = await readAll(
          src,
          { table: { schema: null, name: 'tz' }, columns: [], filterColumn: 'ts', keyColumns: ['id'] },
          1,
        );
        assert.deepEqual(
          rows.map((r) => [r.position.filter, r.position.key[0]]),
          [
            ['2025-01-01 00:00:00.000001+00', '2'],
            ['2025-01-01 00:00:00.000001+00', '3'],
            ['2025-01-01 00:00:00.000002+00', '1'],
            ['2025-01-01 00:00:00.000002+00', '4'],
          ],
        );
        assert.equal(
          await src.lookbackFrom({ schema: null, name: 'tz' }, 'ts', '2025-01-01 00:10:00.123456+00', 300),
          '2025-01-01 00:05:00.123456+00',
        );
      });
    });
  },
};

const mysqlFixture: Fixture = {
  engine: 'mysql',
  label: 'mysql (MariaDB)',
  server: 'mysql',
  skip: await skipUnlessServer('mysql'),
  create: withTempMysqlDatabase,
  t: {
    q: bq,
    ts: 'datetime(6)',
    int: 'int',
    bigint: 'bigint',
    text: 'text',
    key: 'varchar(64)',
    date: 'date',
    numeric: 'decimal(10,2)',
    bool: 'boolean',
  },
  tsTypeName: 'datetime(6)',
  kinds: ['timestamp', 'date', 'integer', 'numeric', 'text', 'boolean'],
  badConnections: () => [
    {
      what: 'wrong port',
      params: { url: `mysql://root:${SECRET}@127.0.0.1:1/test` },
      expect: /ECONNREFUSED/,
      secret: SECRET,
    },
    {
      what: 'wrong database',
      params: {
        url: `${mysqlTarget.protocol}//${mysqlTarget.username || 'root'}${mysqlTarget.password ? `:${mysqlTarget.password}` : ''}@${mysqlTarget.host}/kbsync_no_such_db`,
      },
      expect: /Unknown database 'kbsync_no_such_db'/,
    },
    {
      what: 'wrong password',
      params: {
        host: mysqlTarget.hostname,
        port: Number(mysqlTarget.port || 3306),
        user: 'kbsync_no_such_user',
        password: SECRET,
        database: 'test',
      },
      expect: /Access denied/,
      secret: SECRET,
    },
  ],
  extras() {
    it('mysql: TIMESTAMP(6) and DATETIME(0) columns keep their own text form', async () => {
      const setup = [
        'CREATE TABLE tz (id int PRIMARY KEY, ts timestamp(6) NULL DEFAULT NULL, dt datetime NULL)',
        // The writer's zone must not matter to the reader, which reads TIMESTAMP in UTC.
        "SET time_zone = '+02:00'",
        `INSERT INTO tz VALUES (1, '2025-01-01 02:00:00.000002', '2025-01-01 00:00:00'),
           (2, '2025-01-01 02:00:00.000001', '2025-01-01 00:00:01'), (3, '2025-01-01 02:00:00.000001', NULL)`,
      ];
      await withSource(mysqlFixture, setup, async (src) => {
        const table = { schema: null, name: 'tz' };
        const info = await src.describeTable(table);
        assert.deepEqual(
          info?.columns.map((c) => [c.type, c.kind]),
          [
            ['int(11)', 'integer'],
            ['timestamp(6)', 'timestamp'],
            ['datetime', 'timestamp'],
          ],
        );
        const { rows } = await readAll(
          src,
          { table, columns: ['ts'], filterColumn: 'ts', keyColumns: ['id'] },
          1,
        );
        assert.deepEqual(
          rows.map((r) => [r.position.filter, r.position.key[0]]),
          [
            ['2025-01-01 00:00:00.000001', '2'],
            ['2025-01-01 00:00:00.000001', '3'],
            ['2025-01-01 00:00:00.000002', '1'],
          ],
        );
        assert.equal(
          await src.maxPosition(table, 'dt', ['id']).then((p) => p?.filter),
          '2025-01-01 00:00:01',
        );
        assert.equal(await src.lookbackFrom(table, 'dt', '2025-01-01 00:10:00', 0.5), '2025-01-01 00:09:59');
        assert.equal(await src.lookbackFrom(table, 'dt', '2025-01-01 00:10:00', 300), '2025-01-01 00:05:00');
        assert.equal(await src.countNullFilter(table, 'dt'), 1);
      });
    });

    it('mysql: a schema other than the connected database finds nothing', async () => {
      await withSource(mysqlFixture, ['CREATE TABLE t (id int PRIMARY KEY)'], async (src, db) => {
        assert.ok(await src.describeTable({ schema: null, name: 't' }));
        const dbName = new URL(db.url).pathname.slice(1);
        assert.ok(await src.describeTable({ schema: dbName, name: 't' }));
        assert.equal(await src.describeTable({ schema: 'mysql', name: 'user' }), null);
      });
    });
  },
};

const sqlite: Fixture = {
  engine: 'sqlite',
  label: 'sqlite',
  server: null,
  skip: false,
  create: withTempSqliteDatabase,
  t: {
    q: dq,
    ts: 'DATETIME',
    int: 'INTEGER',
    bigint: 'INTEGER',
    text: 'TEXT',
    key: 'TEXT',
    date: 'DATE',
    numeric: 'NUMERIC',
    bool: 'BOOLEAN',
  },
  tsTypeName: 'DATETIME',
  // SQLite has no boolean type, but a declared BOOLEAN column holds 0/1 (typed metadata true/false).
  kinds: ['timestamp', 'date', 'integer', 'numeric', 'text', 'boolean'],
  badConnections: () => {
    const notADatabase = tempSqliteFile();
    writeFileSync(notADatabase.path, 'this is not a database, just some text long enough to have a header');
    process.on('exit', () => notADatabase.remove());
    return [
      {
        what: 'missing directory',
        params: { path: '/nonexistent-kbsync-dir/x.db' },
        expect: /directory does not exist/,
      },
      { what: 'missing file', params: { path: `${notADatabase.path}.missing` }, expect: /unable to open/ },
      { what: 'not a database', params: { path: notADatabase.path }, expect: /not a database/ },
    ];
  },
  extras() {
    it('sqlite: stored time layouts and Unix times keep their form', async () => {
      const setup = [
        'CREATE TABLE t (id INTEGER PRIMARY KEY, ts TIMESTAMP, unix INTEGER, at DATETIME)',
        `INSERT INTO t VALUES (1, '2025-01-01T00:10:00Z', 1735690200, 1735690200123),
           (2, '2025-01-01T00:10:00.5+02:00', 1735690200, 1735690200)`,
      ];
      await withSource(sqlite, setup, async (src) => {
        const table = { schema: null, name: 't' };
        assert.equal(
          await src.lookbackFrom(table, 'ts', '2025-01-01T00:10:00Z', 300),
          '2025-01-01T00:05:00Z',
        );
        assert.equal(
          await src.lookbackFrom(table, 'ts', '2025-01-01T00:10:00.5+02:00', 600),
          '2025-01-01T00:00:00.5+02:00',
        );
        assert.equal(await src.lookbackFrom(table, 'ts', '2025-03-01 00:00', 1), '2025-02-28 23:59');
        assert.equal(await src.lookbackFrom(table, 'at', '1735690200', 300), '1735689900');
        assert.equal(await src.lookbackFrom(table, 'at', '1735690200123', 300), '1735689900123');
        await assert.rejects(src.lookbackFrom(table, 'ts', 'yesterday', 300), /not a date/);
        // A rowid key is an INTEGER PRIMARY KEY: never NULL, though not declared NOT NULL.
        assert.equal((await src.describeTable(table))?.columns[0]?.nullable, false);
      });
    });
  },
};

for (const fx of [postgres, mysqlFixture, sqlite]) contract(fx);
