/**
 * SQLite columns without a declared type hold each value in its own storage class ('60' as text
 * next to 60 as a number), which sort apart. Keyset paging over such a filter column must still
 * return every row once, across batch boundaries.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { createSourceConnector } from '../../src/sources/factory.js';
import type { KeysetPosition } from '../../src/sources/port.js';
import { tempSqliteFile } from '../helpers/databases.js';

it('pages through an untyped filter column mixing integers, reals, text and blobs, each row once', async () => {
  const file = tempSqliteFile();
  const db = new Database(file.path);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, f, body TEXT)');
  const values: unknown[] = [60, '60', 5, '5', 0.1 + 0.2, 'abc', Buffer.from([0, 255]), 60, '10', 7n];
  const insert = db.prepare('INSERT INTO t (id, f, body) VALUES (?, ?, ?)');
  for (const [i, v] of values.entries()) insert.run(i + 1, v, `row ${i + 1}`);
  db.close();
  const c = createSourceConnector('sqlite', { path: file.path });
  try {
    const table = { schema: null, name: 't' };
    const until = await c.maxPosition(table, 'f', ['id']);
    const seen: string[] = [];
    let from: { after: KeysetPosition } | null = null;
    for (;;) {
      const rows = await c.readBatch({ table, columns: ['body'], filterColumn: 'f', keyColumns: ['id'], from, until, limit: 1 });
      if (rows.length === 0) break;
      seen.push(rows[0]!.position.key[0]!);
      from = { after: rows[0]!.position };
    }
    assert.equal(seen.length, values.length, `read ${seen.join(',')}`);
    assert.equal(new Set(seen).size, values.length);
    // SQLite's order: numbers (by value), then text, then blobs.
    assert.deepEqual(seen, ['5', '3', '10', '1', '8', '9', '4', '2', '6', '7']);
  } finally {
    await c.close();
    file.remove();
  }
});
