/** Time comes through this port so tests can move it (issue: scheduler with a test clock). */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
