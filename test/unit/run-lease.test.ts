/** The fleet's claim rules (src/core/run-lease.ts): who holds a run, when a claim lapsed, what the sweep does. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { claimBlocked, claimLapsed, holdsRun, leaseFor, sweepVerdict } from '../../src/core/run-lease.js';

const T = 1_000_000;
const alive = () => false;
const dead = (owner: string) => owner === 'gone';
const job = (over: Partial<{ status: string; runLease: { owner: string; expiresAt: number } | null; lastRun: { id: string } | null }> = {}) => ({
  status: 'running',
  runLease: leaseFor('p1', T, 1000),
  lastRun: { id: 'r1' },
  ...over,
});
const running = { id: 'r1', status: 'running' };

describe('run claims', () => {
  it('a claim is held by its owner for the job’s current run only, expired or not', () => {
    assert.deepEqual(leaseFor('p1', T, 1000), { owner: 'p1', expiresAt: T + 1000 });
    assert.equal(holdsRun(job(), 'p1', 'r1'), true);
    assert.equal(holdsRun(job(), 'p2', 'r1'), false, 'another owner');
    assert.equal(holdsRun(job(), 'p1', 'r0'), false, 'another run is the current one');
    assert.equal(holdsRun(job({ runLease: { owner: 'p1', expiresAt: 0 } }), 'p1', 'r1'), true, 'expired but not taken over: still the only writer');
    assert.equal(holdsRun(job({ runLease: null }), 'p1', 'r1'), false);
  });

  it('a claim lapses when missing, expired, or held by a dead process', () => {
    assert.equal(claimLapsed(null, T, alive), true);
    assert.equal(claimLapsed(undefined, T, alive), true);
    assert.equal(claimLapsed(leaseFor('p1', T, 1000), T + 999, alive), false);
    assert.equal(claimLapsed(leaseFor('p1', T, 1000), T + 1000, alive), true, 'expires_at itself is expired');
    assert.equal(claimLapsed(leaseFor('gone', T, 60_000), T, dead), true, 'a dead holder is not waited out');
  });

  it('a new claim waits while the job runs or a live claim remains (a paused job whose run is still stopping)', () => {
    assert.equal(claimBlocked(job(), T, alive), true);
    assert.equal(claimBlocked(job({ status: 'paused' }), T, alive), true, 'paused, its run not stopped yet');
    assert.equal(claimBlocked(job({ status: 'paused' }), T + 1000, alive), false, 'that claim lapsed');
    assert.equal(claimBlocked(job({ status: 'scheduled', runLease: null }), T, alive), false);
    assert.equal(claimBlocked(job({ status: 'running', runLease: null }), T, alive), true, 'running is running, claim or not');
  });

  it('the sweep waits for live claims, resumes lapsed ones of running jobs, and closes the rest', () => {
    assert.equal(sweepVerdict(job(), running, T, alive), 'wait', 'alive');
    assert.equal(sweepVerdict(job(), running, T + 1000, alive), 'resume', 'expired');
    assert.equal(sweepVerdict(job({ runLease: leaseFor('gone', T, 60_000) }), running, T, dead), 'resume', 'dead holder');
    assert.equal(sweepVerdict(job({ runLease: null }), running, T, alive), 'resume', 'no claim (an older version)');
    assert.equal(sweepVerdict(job({ status: 'paused' }), running, T + 1000, alive), 'close', 'paused while its process died');
    assert.equal(sweepVerdict(job({ status: 'paused' }), running, T, alive), 'wait', 'paused, its process still stopping it');
    assert.equal(sweepVerdict(job({ lastRun: { id: 'r2' } }), running, T, alive), 'close', 'another run claimed since');
    assert.equal(sweepVerdict(null, running, T + 1000, alive), 'wait', 'job deleted: its runs go with it');
    assert.equal(sweepVerdict(job(), { id: 'r1', status: 'succeeded' }, T + 1000, alive), 'wait', 'ended meanwhile');
  });
});
