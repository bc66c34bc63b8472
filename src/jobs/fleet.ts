/**
 * The fleet: every `kbsync serve` process on one store (docs/architecture.md, "Fleet"). Each
 * process keeps a heartbeat — a named lease `process:<id>#<started_at>` renewed every third of its
 * life — so GET /health can list the live ones and a scheduler starting up can tell whether ticks
 * were missed by everyone (a `catch_up` run) or only by itself.
 *
 * Wall-clock time and real, unref'd timers, like every lease: it is about processes, not the job
 * schedule (which runs on the Clock port). Processes on several machines need synchronised clocks
 * (NTP): a skew of a sizeable part of the lease's life would shorten or stretch it.
 */
import os from 'node:os';
import type { ControlStore } from '../store/port.js';
import { holderIsDeadHere, newProcessId, parseProcessId } from './lease.js';

const PREFIX = 'process:';

export interface FleetProcess {
  id: string;
  host: string;
  pid: number;
  startedAt: number;
}

export class Fleet {
  readonly id: string;
  readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private readonly leaseName: string;

  constructor(
    private readonly store: ControlStore,
    readonly ttlMs: number,
    id: string = newProcessId(),
  ) {
    this.id = id;
    this.leaseName = `${PREFIX}${id}#${this.startedAt}`;
  }

  /** This process as the fleet lists it. */
  get self(): FleetProcess {
    return { id: this.id, host: os.hostname(), pid: process.pid, startedAt: this.startedAt };
  }

  /** Starts the heartbeat (idempotent). A failed beat is tried again at the next one. */
  async join(): Promise<void> {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.beat().catch(() => undefined), this.ttlMs / 3);
    this.timer.unref();
    await this.beat().catch(() => undefined);
  }

  /** Stops the heartbeat and removes it, so the fleet stops listing this process at once. */
  async leave(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.store.releaseLease(this.leaseName, this.id).catch(() => undefined);
  }

  /** Live processes, oldest first (a heartbeat of a dead process of this host is left out at once). */
  async live(): Promise<FleetProcess[]> {
    const leases = await this.store.listLeases(PREFIX, Date.now());
    const members = leases.flatMap((lease) => {
      const member = parseLeaseName(lease.name);
      return member !== null && member.id === lease.owner && !holderIsDeadHere(member.id) ? [member] : [];
    });
    return members.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
  }

  /** Whether another process than this one is alive in the fleet. */
  async othersAlive(): Promise<boolean> {
    return (await this.live()).some((p) => p.id !== this.id);
  }

  private async beat(): Promise<void> {
    await this.store.acquireLease(this.leaseName, this.id, this.ttlMs, Date.now());
  }
}

/** `process:<id>#<started_at>` → the member; null for anything else. */
function parseLeaseName(name: string): FleetProcess | null {
  if (!name.startsWith(PREFIX)) return null;
  const rest = name.slice(PREFIX.length);
  const hash = rest.lastIndexOf('#');
  if (hash < 0) return null;
  const id = rest.slice(0, hash);
  const startedAt = Number(rest.slice(hash + 1));
  const parsed = parseProcessId(id);
  if (parsed === null || !Number.isSafeInteger(startedAt)) return null;
  return { id, host: parsed.host, pid: parsed.pid, startedAt };
}
