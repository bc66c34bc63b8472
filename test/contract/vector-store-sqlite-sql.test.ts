/**
 * The pure SQL builders of the SQLite vector store: metadata filter -> WHERE fragment, and user
 * text -> FTS5 MATCH expression. (They would sit in test/unit/; they are here because they are
 * only meaningful next to the adapter they feed.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { AppError } from '../../src/core/errors.js';
import { toUtcIso } from '../../src/core/typed-values.js';
import { compileMetadataFilter, timeBoundKey, validateMetadataFilter } from '../../src/store/sqlite/metadata-filter.js';
import { toFtsMatchExpression } from '../../src/store/sqlite/vector-keyword-query.js';
import type { Metadata, MetadataFilter, MetadataValue } from '../../src/store/vector-port.js';

describe('compileMetadataFilter', () => {
  it('binds field names and values; the SQL text holds neither', () => {
    const f = compileMetadataFilter({ 'src.table': 'orders', price: { gte: 5, lte: 9 } }, 'm');
    assert.ok(!f.sql.includes('orders') && !f.sql.includes('src.table'));
    assert.equal((f.sql.match(/\?/g) ?? []).length, f.params.length);
    assert.ok(f.params.includes('$."src.table"'));
  });

  it('no filter is `1`', () => {
    assert.deepEqual(compileMetadataFilter(undefined, 'm'), { sql: '1', params: [] });
    assert.deepEqual(compileMetadataFilter({}, 'm'), { sql: '1', params: [] });
  });

  it('collects every problem into one INVALID_REQUEST', () => {
    const filter = {
      'bad"name': 1,
      price: { above: 1 },
      when: { gte: 1, lt: 'x' },
    } as unknown as MetadataFilter;
    assert.throws(
      () => compileMetadataFilter(filter, 'm'),
      (e) => e instanceof AppError && e.code === 'INVALID_REQUEST' && e.details.length === 3,
    );
    assert.deepEqual(validateMetadataFilter(null), ['filter must be an object of metadata field -> value']);
  });

  describe('agrees with the documented semantics on random data', () => {
    let db: Database.Database;
    before(() => {
      db = new Database(':memory:');
      db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, m TEXT NOT NULL)');
    });
    after(() => db.close());

    const fields = ['a', 'b', 'c.d'] as const;
    const str = fc.constantFrom(
      '',
      'x',
      'y',
      '10',
      '2025-01-01',
      '2025-06-19T18:00:00Z',
      'true',
      // Typed timestamps with fractions of several lengths, one in another zone, one naive.
      '2025-06-19T18:00:00.5Z',
      '2025-06-19T18:00:00.50Z',
      '2025-06-19T17:59:59.999999Z',
      '2025-06-19T18:00:00.000000001Z',
      '2025-06-19T20:00:00+02:00',
      '2025-06-19 18:00:00',
    );
    // 0 and 1 often, since JSON false/true come back from json_extract as 0/1.
    const num = fc.oneof(
      fc.constantFrom(0, 1),
      fc.integer({ min: -3, max: 12 }),
      fc.constantFrom(0.5, 10.25, -1.5),
    );
    const scalar: fc.Arbitrary<MetadataValue> = fc.oneof(str, num, fc.boolean(), fc.constant(null));
    const metadata: fc.Arbitrary<Metadata> = fc.dictionary(fc.constantFrom(...fields), scalar);
    const bounds = fc.oneof(
      fc.record({ gt: num, gte: num, lt: num, lte: num }, { requiredKeys: [] }),
      fc.record({ gt: str, gte: str, lt: str, lte: str }, { requiredKeys: [] }),
    );
    const condition = fc.oneof(
      scalar,
      fc.record({ in: fc.array(scalar, { maxLength: 4 }) }),
      bounds.filter((b) => Object.keys(b).length > 0),
      fc.record({ in: fc.array(scalar, { maxLength: 3 }), gte: num }),
    );
    const filter: fc.Arbitrary<MetadataFilter> = fc.dictionary(fc.constantFrom(...fields), condition, {
      maxKeys: 2,
    });

    /** The chronological key of a stored timestamp (typed with Z, or naive = UTC), computed independently of the SQL. */
    function timeKey(v: string): string | null {
      const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z?$/.exec(v);
      if (m === null) return null;
      const fraction = (m[3] ?? '').padEnd(12, '0');
      return `${m[1]}T${m[2]}.${fraction}`;
    }
    function equal(v: MetadataValue | undefined, want: MetadataValue): boolean {
      if (want === null) return v === null || v === undefined;
      return v === want;
    }
    function reference(m: Metadata, f: MetadataFilter): boolean {
      return Object.entries(f).every(([field, cond]) => {
        const v = m[field];
        if (cond === null || typeof cond !== 'object') return equal(v, cond);
        if (cond.in !== undefined && !cond.in.some((w) => equal(v, w))) return false;
        for (const op of ['gt', 'gte', 'lt', 'lte'] as const) {
          const b = cond[op];
          if (b === undefined) continue;
          if (typeof v !== typeof b) return false;
          let x = v as string | number;
          let y: string | number = b;
          if (typeof b === 'string') {
            if (timeBoundKey(b) !== null) {
              const stored = timeKey(x as string);
              if (stored === null) return false;
              x = stored;
              y = timeKey(toUtcIso(b)!)!;
            }
          }
          const holds = op === 'gt' ? x > y : op === 'gte' ? x >= y : op === 'lt' ? x < y : x <= y;
          if (!holds) return false;
        }
        return true;
      });
    }

    it('matches a JS reference implementation', () => {
      fc.assert(
        fc.property(fc.array(metadata, { minLength: 1, maxLength: 12 }), filter, (rows, f) => {
          db.exec('DELETE FROM t');
          const insert = db.prepare('INSERT INTO t (id, m) VALUES (?, ?)');
          for (const [i, m] of rows.entries()) insert.run(i, JSON.stringify(m));
          const where = compileMetadataFilter(f, 'm');
          const got = db
            .prepare(`SELECT id FROM t WHERE ${where.sql} ORDER BY id`)
            .pluck()
            .all(...where.params) as number[];
          const want = rows.flatMap((m, i) => (reference(m, f) ? [i] : []));
          assert.deepEqual(got, want, JSON.stringify({ f, rows }));
        }),
        { numRuns: 500 },
      );
    });
  });
});

describe('toFtsMatchExpression', () => {
  it('quotes each term and ORs them', () => {
    assert.equal(toFtsMatchExpression('red  lamp'), '"red" OR "lamp"');
    assert.equal(toFtsMatchExpression('SKU-4471-B'), '"SKU-4471-B"');
    assert.equal(toFtsMatchExpression('"brass base" lamp'), '"brass base" OR "lamp"');
    assert.equal(toFtsMatchExpression('"foo NEAR ('), '"foo" OR "NEAR"');
    assert.equal(toFtsMatchExpression('Lamp lamp LAMP'), '"Lamp"');
  });

  it('drops English stop words, but never codes, quoted phrases or a query of stop words only', () => {
    assert.equal(toFtsMatchExpression('the lamp and a tent'), '"lamp" OR "tent"');
    assert.equal(toFtsMatchExpression('"foo AND ('), '"foo"');
    // Looks like a code or a number: kept.
    assert.equal(toFtsMatchExpression('the A-1 and 2 of it'), '"A-1" OR "2"');
    assert.equal(toFtsMatchExpression('IS-9 is'), '"IS-9"');
    // Quoted: kept as a phrase.
    assert.equal(toFtsMatchExpression('"the end" of it'), '"the end"');
    // Nothing but stop words: all kept, still inert text for FTS5.
    assert.equal(toFtsMatchExpression('AND OR NOT'), '"AND" OR "OR" OR "NOT"');
    assert.equal(toFtsMatchExpression('to be or not to be'), '"to" OR "be" OR "or" OR "not"');
  });

  it('returns null when nothing can match', () => {
    for (const q of ['', '   ', '\t\n', '( ) * ^ -', '"', '""', '\u0000'])
      assert.equal(toFtsMatchExpression(q), null, q);
  });

  it('always yields an expression FTS5 accepts', () => {
    const database = new Database(':memory:');
    database.exec(`CREATE VIRTUAL TABLE f USING fts5(text, tokenize="unicode61 remove_diacritics 2")`);
    database.prepare('INSERT INTO f (text) VALUES (?)').run('some text to match against');
    const search = database.prepare('SELECT rowid FROM f WHERE f MATCH ?');
    try {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (q) => {
          const expr = toFtsMatchExpression(q);
          if (expr === null) return;
          assert.match(expr, /^"[^"]+"( OR "[^"]+")*$/);
          search.all(expr);
        }),
        { numRuns: 1000 },
      );
    } finally {
      database.close();
    }
  });
});
