/**
 * The progress reporter of a run (src/sync/run-progress.ts): it writes only when rows or the
 * estimate moved, one write at a time (a slow store never gets a queue of them), nothing once
 * stopped, and stop() waits for the write in flight. Events are counted, never timed: the
 * reporter samples every 5 ms here, and the test waits for what must happen, however slowly.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { RunRecord } from '../../src/store/port.js';
import { RunProgressReporter } from '../../src/sync/run-progress.js';

function runRecord(): RunRecord {
  return {
    id: 'run_1',
    jobId: 'job_1',
    trigger: 'manual',
    status: 'running',
    startedAt: 0,
    finishedAt: null,
    rowsRead: 0,
    documentsAdded: 0,
    documentsUpdated: 0,
    documentsUnchanged: 0,
    rowsSkipped: 0,
    rowsFailed: 0,
    chunksWritten: 0,
    watermarkStart: null,
    watermarkEnd: null,
    error: null,
  };
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await sleep(5);
  }
}

/** Several samples of the reporter (every 5 ms) pass; on a slow machine fewer, which only makes a "nothing happened" check weaker. */
const someTicks = () => sleep(60);

describe('RunProgressReporter', () => {
  it('writes only when something moved, one write at a time, and nothing after stop()', async () => {
    const run = runRecord();
    const writes: Array<number | null> = [];
    let inFlight = 0;
    let most = 0;
    let gate: Promise<void> = Promise.resolve();
    let open: () => void = () => undefined;
    // As run-sync's writeProgress: the latest progress, then told to the reporter once stored.
    const reporter: RunProgressReporter = new RunProgressReporter(
      run,
      async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        await gate;
        const progress = reporter.refresh();
        writes.push(progress.rowsDone);
        reporter.stored(progress);
        inFlight--;
      },
      { intervalMs: 5 },
    );
    reporter.start();
    await someTicks();
    assert.deepEqual(writes, [], 'nothing moved: nothing written');

    reporter.setEstimate(100);
    await until('the estimate is written', () => writes.length === 1);
    assert.deepEqual(run.progress, { rowsDone: 0, rowsTotalEstimate: 100, percent: 0, etaSeconds: null });
    await someTicks();
    assert.equal(writes.length, 1, 'nothing moved since: no second write');

    // A slow store: the write is held; rows keep moving meanwhile.
    gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const first = {};
    reporter.batchProgress(first, 10);
    await until('a write is in flight', () => inFlight === 1);
    reporter.batchProgress(first, 20);
    reporter.batchProgress(first, 15); // never back within a batch
    await someTicks();
    assert.equal(inFlight, 1, 'no second write while one is in flight');
    open();
    await until('the held write is done', () => writes.length === 2 && inFlight === 0);
    assert.equal(writes[1], 20, 'it wrote the latest rows done');

    // A checkpoint: the batch's rows are now in rows_read and count once.
    run.rowsRead = 50;
    const checkpointed = reporter.refresh(first);
    assert.equal(checkpointed.rowsDone, 50);
    assert.equal(checkpointed.percent, 50);
    reporter.stored(checkpointed);
    await someTicks();
    assert.equal(writes.length, 2, 'the checkpoint wrote it: no progress write');

    // Stop waits for a write in flight, and nothing is written afterwards.
    gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    reporter.batchProgress({}, 10);
    await until('a write is in flight', () => inFlight === 1);
    const stopped = reporter.stop();
    let done = false;
    void stopped.then(() => {
      done = true;
    });
    await someTicks();
    assert.equal(done, false, 'stop() waits for the write in flight');
    open();
    await stopped;
    reporter.batchProgress({}, 40);
    await someTicks();
    assert.equal(writes.length, 3, 'nothing written after stop()');
    assert.equal(most, 1);
  });

  it('two batches in flight count each, and a checkpoint takes only its own batch out', () => {
    const run = runRecord();
    const reporter = new RunProgressReporter(run, async () => undefined, { intervalMs: 60_000 });
    reporter.setEstimate(1000);
    const written = {};
    const embedding = {};
    reporter.batchProgress(written, 100);
    reporter.batchProgress(embedding, 30);
    assert.equal(reporter.refresh().rowsDone, 130);
    // The first batch is checkpointed: its 100 rows move into rows_read, the second's 30 stay.
    run.rowsRead += 100;
    assert.equal(reporter.refresh(written).rowsDone, 130);
    reporter.batchProgress(embedding, 60);
    assert.equal(reporter.refresh().rowsDone, 160);
    run.rowsRead += 100;
    assert.equal(reporter.refresh(embedding).rowsDone, 200);
  });

  it('a failed write is not the run\'s failure: the next sample tries again', async () => {
    const run = runRecord();
    let attempts = 0;
    const reporter = new RunProgressReporter(
      run,
      async () => {
        attempts++;
        if (attempts === 1) throw new Error('store busy');
      },
      { intervalMs: 5 },
    );
    reporter.start();
    reporter.batchProgress({}, 5);
    await until('a second attempt', () => attempts >= 2);
    await reporter.stop();
  });
});
