/**
 * The one stable union of error codes and the one place they map to HTTP statuses.
 * Services throw AppError; the API layer turns it into the error envelope.
 */
export const ERROR_STATUS = {
  INVALID_REQUEST: 400,
  INVALID_INTERVAL: 400,
  INVALID_DATETIME: 400,
  INVALID_TABLE: 400,
  INVALID_KB: 400,
  CONNECTION_FAILED: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  DUPLICATE_JOB: 409,
  DUPLICATE_DATABASE: 409,
  DUPLICATE_KB: 409,
  CONFLICT: 409,
  JOB_LIMIT_EXCEEDED: 429,
  RATE_LIMITED: 429,
  NOT_IMPLEMENTED: 501,
  STORE_UNAVAILABLE: 503,
  INTERNAL_ERROR: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: string[];
  /** HTTP status; some codes (INVALID_REQUEST for 413/415) carry their own. */
  readonly status: number;

  constructor(code: ErrorCode, message: string, details: string[] = [], options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = details;
    this.status = options?.status ?? ERROR_STATUS[code];
  }
}

/** One validation problem: a readable sentence and the code it belongs to. */
export interface Problem {
  code: ErrorCode;
  detail: string;
}

/**
 * Folds collected problems into one error: the specific code when every problem shares it,
 * INVALID_REQUEST when they are of several kinds (API.md, "Envelope").
 */
export function problemsToError(problems: Problem[], message = 'Invalid request'): AppError {
  const codes = new Set(problems.map((p) => p.code));
  const code: ErrorCode = codes.size === 1 ? [...codes][0]! : 'INVALID_REQUEST';
  return new AppError(code, message, problems.map((p) => p.detail));
}

export const notFound = (what: string, name: string): AppError =>
  new AppError('NOT_FOUND', `${what} not found`, [`${what} '${name}' does not exist`]);

export const conflict = (message: string, details: string[] = []): AppError =>
  new AppError('CONFLICT', message, details);
