/**
 * Search threads run at a lower scheduling priority than the main thread (threads/priority.ts):
 * on Linux the nice value is per thread, readable in /proc/self/task/<tid>/stat (field 19).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteReader } from '../../src/store/sqlite/reader.js';

/** Nice values of this process's threads. */
function threadNices(): number[] {
  const nices: number[] = [];
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // Fields after the command name "(...)": state is field 3, nice field 19.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      nices.push(Number(fields[16]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return nices;
}

describe('worker thread priority', { skip: process.platform !== 'linux' ? 'per-thread nice values are a Linux feature' : false }, () => {
  it('a search thread runs at the configured nice value; the main thread keeps its own', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-nice-'));
    const file = path.join(dir, 'store.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (x INTEGER)');
    db.close();
    const mainNice = os.getPriority();
    const target = Math.min(19, mainNice + 7);
    assert.ok(!threadNices().includes(target), 'no thread at the target value before the reader starts');
    const reader = new SqliteReader(file, 1, target);
    try {
      assert.deepEqual(await reader.all('SELECT 1 AS one', []), [{ one: 1 }]);
      assert.ok(threadNices().includes(target), `a thread runs at nice ${target}: ${threadNices().join(',')}`);
      assert.equal(os.getPriority(), mainNice, 'the main thread is not lowered');
    } finally {
      await reader.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
