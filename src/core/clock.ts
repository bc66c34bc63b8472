/**
 * Time comes through this port so tests can move it: `now()` and one-shot timers. The system
 * clock uses real timers; ManualClock (tests) fires timers only when advanced.
 */
export interface Clock {
  now(): number;
  /** Calls `fn` once after `ms`; returns a function that cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
}

/** setTimeout overflows past 2^31-1 ms (~24.8 days); longer waits re-arm. */
const MAX_TIMEOUT = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const due = Date.now() + Math.max(0, ms);
    let handle: NodeJS.Timeout;
    const arm = () => {
      const left = due - Date.now();
      handle = setTimeout(left > MAX_TIMEOUT ? arm : fn, Math.min(Math.max(0, left), MAX_TIMEOUT));
    };
    arm();
    return () => clearTimeout(handle);
  },
};

/** A clock that stands still until told to move (tests). */
export class ManualClock implements Clock {
  private time: number;
  private timers: Array<{ due: number; fn: () => void; id: number }> = [];
  private nextId = 0;

  constructor(start: number) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): () => void {
    const id = this.nextId++;
    this.timers.push({ due: this.time + Math.max(0, ms), fn, id });
    return () => {
      this.timers = this.timers.filter((t) => t.id !== id);
    };
  }

  /** Moves time to `target`, firing each due timer at its own time, in order. */
  set(target: number): void {
    for (;;) {
      const next = this.timers.filter((t) => t.due <= target).sort((a, b) => a.due - b.due || a.id - b.id)[0];
      if (!next) break;
      this.timers = this.timers.filter((t) => t.id !== next.id);
      this.time = Math.max(this.time, next.due);
      next.fn();
    }
    this.time = Math.max(this.time, target);
  }

  advance(ms: number): void {
    this.set(this.time + ms);
  }

  pendingTimers(): number {
    return this.timers.length;
  }
}
