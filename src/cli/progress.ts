/**
 * `kbsync jobs run NAME --wait`: polls GET /jobs/{job}/runs/{run_id} until the run ends, showing
 * a bar on a terminal. The bar follows the run's `progress` (rows done of an estimate, the
 * server's ETA); a server that reports no progress gets a spinner with the rows read so far.
 */
import cliProgress from 'cli-progress';
import type { Run, RunProgress } from './api-types.js';
import type { Context } from './context.js';
import { ConnectError } from './errors.js';
import { seg } from './http.js';
import { count, duration } from './format.js';

export interface WaitOptions {
  pollMs?: number;
  /** Consecutive failed polls (server restarting, network blip) tolerated before giving up; default: 30 s worth. */
  maxMissedPolls?: number;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const BAR_WIDTH = 30;

/** What the bar shows for one poll: a known total (bar, percent, ETA) or only a count. */
interface Frame {
  done: number;
  total: number | null;
  percent: number | null;
  eta: number | null;
}

export function frameOf(run: Run): Frame {
  const p: RunProgress | null | undefined = run.progress;
  if (p && p.rows_total_estimate !== null && p.rows_total_estimate > 0) {
    const total = Math.max(p.rows_total_estimate, p.rows_done);
    const percent = p.percent ?? (100 * p.rows_done) / total;
    return { done: p.rows_done, total, percent, eta: p.eta_seconds };
  }
  return { done: p?.rows_done ?? run.rows_read, total: null, percent: null, eta: null };
}

/** One line of the bar; `tick` turns the spinner (null: none, for lines that are not redrawn). */
export function renderFrame(frame: Frame, tick: number | null, elapsedMs: number): string {
  if (frame.total !== null && frame.percent !== null) {
    const filled = Math.min(BAR_WIDTH, Math.round((BAR_WIDTH * frame.percent) / 100));
    const bar = `${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}`;
    const eta = frame.eta === null ? 'ETA -' : `ETA ${duration(frame.eta * 1000)}`;
    return `${bar} ${frame.percent.toFixed(0).padStart(3)}% | ${count(frame.done)}/${count(frame.total)} rows | ${eta}`;
  }
  const spinner = tick === null ? '' : `${SPINNER[tick % SPINNER.length]} `;
  return `${spinner}running | ${count(frame.done)} rows read | ${duration(elapsedMs)}`;
}

/** Polls until the run is no longer `running`; returns its final state. */
export async function waitForRun(
  ctx: Context,
  job: string,
  runId: string,
  options: WaitOptions = {},
): Promise<Run> {
  const pollMs = options.pollMs ?? 500;
  const maxMissed = options.maxMissedPolls ?? Math.ceil(30_000 / pollMs);
  const display = ctx.json ? null : process.stderr.isTTY ? new TerminalBar() : new PlainLines();
  const started = Date.now();
  let tick = 0;
  let missed = 0;
  const interrupted = () => {
    display?.stop();
    process.stderr.write(`\nstopped waiting; run ${runId} goes on on the server: kbsync jobs runs ${job}\n`);
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  try {
    for (;;) {
      let run: Run;
      try {
        run = await ctx.client.get<Run>(`/jobs/${seg(job)}/runs/${seg(runId)}`);
        missed = 0;
      } catch (err) {
        if (!(err instanceof ConnectError) || ++missed > maxMissed) throw err;
        await sleep(pollMs);
        continue;
      }
      if (run.status !== 'running') {
        display?.stop();
        return run;
      }
      display?.show(renderFrame(frameOf(run), display.redraws ? tick++ : null, Date.now() - started));
      await sleep(pollMs);
    }
  } finally {
    display?.stop();
    process.removeListener('SIGINT', interrupted);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Display {
  /** Whether lines replace each other (a spinner makes sense). */
  readonly redraws: boolean;
  show(line: string): void;
  stop(): void;
}

/** cli-progress draws and redraws one line on the terminal (stderr); we hand it the text. */
class TerminalBar implements Display {
  readonly redraws = true;
  private bar: cliProgress.SingleBar | null = null;

  show(line: string): void {
    if (this.bar === null) {
      this.bar = new cliProgress.SingleBar({
        format: (_options, _params, payload: { line?: string }) => payload.line ?? '',
        hideCursor: true,
        clearOnComplete: false,
        stream: process.stderr,
      });
      this.bar.start(1, 0, { line });
    } else {
      this.bar.update(0, { line });
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

/** Piped or logged stderr: no redraws, a line at most every 5 seconds. */
class PlainLines implements Display {
  readonly redraws = false;
  private last = 0;

  show(line: string): void {
    const now = Date.now();
    if (now - this.last < 5000) return;
    this.last = now;
    process.stderr.write(`${line}\n`);
  }

  stop(): void {}
}
