/**
 * A worker thread standing in for one kbsync process in a race over one SQLite file
 * (test/contract/control-store.test.ts): its own connection and store. On each `{ round, now }`
 * message it answers `ready`, waits until the main thread releases the round (every worker at
 * once, through a shared counter), calls claimRebuild, and answers the knowledge base id it won or null.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteControlStore } from '../../src/store/sqlite/control-store.js';
import { openSqliteFile } from '../../src/store/sqlite/open.js';

const { file, owner, gate } = workerData as { file: string; owner: string; gate: SharedArrayBuffer };
const released = new Int32Array(gate);
const store = new SqliteControlStore(openSqliteFile(file), { ownsDb: true });

parentPort!.on('message', async (m: { round: number; now: number } | 'close') => {
  if (m === 'close') {
    await store.close();
    parentPort!.close();
    return;
  }
  parentPort!.postMessage('ready');
  Atomics.wait(released, 0, m.round - 1);
  const won = await store.claimRebuild(`${owner}_${m.round}`, m.now, 30_000);
  parentPort!.postMessage({ won: won?.id ?? null });
});
