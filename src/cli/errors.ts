/**
 * Exit codes and the errors that carry them. One table, so scripts can tell "the server said no"
 * from "I typed it wrong" from "nothing is listening" (docs/cli.md, "Exit codes").
 */
export const EXIT = {
  ok: 0,
  /** The server answered with an error envelope (or the CLI failed unexpectedly). */
  serverError: 1,
  /** Unknown command or option, missing argument, unreadable file, bad configuration. */
  usage: 2,
  /** No answer from the server: refused, unreachable, timed out, or not a kbsync answer. */
  cannotConnect: 3,
  /** `jobs run --wait`: the run ended failed or cancelled. */
  runFailed: 4,
  /** `serve` / `demo`: the port is taken (set PORT). */
  portInUse: 5,
} as const;

/** The error envelope of API.md, as the server sent it. */
export interface ErrorEnvelope {
  success: false;
  error: { code: string; message: string; details: string[] };
}

/** Anything the CLI reports and exits on; `envelope` is what `--json` prints. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly exitCode: number,
    readonly envelope: ErrorEnvelope,
    options?: { cause?: unknown },
  ) {
    super(envelope.error.message, options);
  }
}

const envelope = (code: string, message: string, details: string[]): ErrorEnvelope => ({
  success: false,
  error: { code, message, details },
});

/** The server answered `success: false`: its own code, message and details. */
export class ApiError extends CliError {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    body: ErrorEnvelope,
  ) {
    super(EXIT.serverError, body);
  }
}

/** A mistake on the command line (bad value, unreadable --file). */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string, details: string[] = []) {
    super(EXIT.usage, envelope('USAGE', message, details));
  }
}

/** Nothing (or not kbsync) answered at the URL; the code is the CLI's own, not the server's. */
export class ConnectError extends CliError {
  override name = 'ConnectError';
  constructor(message: string, details: string[], options?: { cause?: unknown }) {
    super(EXIT.cannotConnect, envelope('CANNOT_CONNECT', message, details), options);
  }
}

/** `jobs run --wait` saw the run end without success. */
export class RunFailedError extends CliError {
  override name = 'RunFailedError';
  constructor(code: string, message: string, details: string[]) {
    super(EXIT.runFailed, envelope(code, message, details));
  }
}

/** "CODE: message" and one indented line per detail: what a person reads on stderr. */
export function describeError(err: CliError): string {
  const { code, message, details } = err.envelope.error;
  const status = err instanceof ApiError ? ` (HTTP ${err.status})` : '';
  return [`error ${code}${status}: ${message}`, ...details.map((d) => `  - ${d}`)].join('\n');
}
