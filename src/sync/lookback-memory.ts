/**
 * What this process learnt about each job's lookback window (SEMANTICS.md, "Late rows"): where
 * the window starts for the job's current watermark (computed by the source, in the column's own
 * type), and the window's fingerprint (SourceConnector.probe) when its rows were last read and
 * written. A run that finds the same fingerprint need not read the window again: no row entered,
 * left or changed in it since — the fingerprint is taken before the read it vouches for, so a row
 * that arrives during that read changes the next fingerprint.
 *
 * An entry holds only for the watermark, configuration and lookback it was made with. Entries are
 * kept in memory (for at most `maxJobs` jobs) and with the job (JobRecord.lookbackSeen, written
 * with the end of a run), so a restart or another process does not read every window once more.
 */
import type { JobRecord, LookbackSeen } from '../store/port.js';

type Entry = LookbackSeen;

export class LookbackMemory {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxJobs = 100_000) {}

  /** The window start known for the job's watermark; undefined when not known. */
  start(job: JobRecord): string | null | undefined {
    const entry = this.entry(job);
    return entry === undefined ? undefined : entry.from;
  }

  rememberStart(job: JobRecord, from: string | null): void {
    this.set(job.id, { about: about(job), from, window: null });
  }

  /** Whether the window's rows were read and written when they had this fingerprint. */
  unchanged(job: JobRecord, from: string, window: { count: number; sum: string } | null): boolean {
    const entry = this.entry(job);
    return (
      window !== null &&
      entry !== undefined &&
      entry.from === from &&
      entry.window !== null &&
      entry.window === fingerprint(window)
    );
  }

  /** The window's rows, as they were when `window` was taken, are read and written. */
  read(job: JobRecord, from: string, window: { count: number; sum: string } | null): void {
    if (window === null) return;
    this.set(job.id, { about: about(job), from, window: fingerprint(window) });
  }

  forget(jobId: string): void {
    this.entries.delete(jobId);
  }

  /** What to keep with the job as it is now (JobRecord.lookbackSeen): the entry that holds for it, if any. */
  seen(job: JobRecord): LookbackSeen | undefined {
    const entry = this.entry(job);
    return entry === undefined ? undefined : { ...entry };
  }

  /** This process's entry, else the one kept with the job, when it holds for the job as it is. */
  private entry(job: JobRecord): Entry | undefined {
    const key = about(job);
    const entry = this.entries.get(job.id);
    if (entry !== undefined && entry.about === key) return entry;
    return job.lookbackSeen !== undefined && job.lookbackSeen.about === key ? job.lookbackSeen : undefined;
  }

  private set(jobId: string, entry: Entry): void {
    // Re-inserted, so the Map's order is least recently written first.
    this.entries.delete(jobId);
    this.entries.set(jobId, entry);
    if (this.entries.size > this.maxJobs) this.entries.delete(this.entries.keys().next().value!);
  }
}

function about(job: JobRecord): string {
  return JSON.stringify([
    job.configVersion ?? 0,
    job.kbName,
    job.filterColumn,
    job.lookbackSeconds,
    job.watermark,
  ]);
}

function fingerprint(window: { count: number; sum: string }): string {
  return `${window.count}:${window.sum}`;
}
