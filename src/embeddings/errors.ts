/**
 * The one error type embedding adapters throw for provider failures, so the sync run can decide
 * between "retry the run later" (retryable) and "the configuration is wrong" (not retryable)
 * without knowing which adapter it talks to.
 */
export class EmbeddingProviderError extends Error {
  /** HTTP status of the last response, when there was one. */
  readonly status: number | undefined;
  /** True when the same request may succeed later (timeouts, 429, 5xx, network errors). */
  readonly retryable: boolean;
  /** Requests made before giving up (1 when the first answer was final). */
  readonly attempts: number;
  /** Provider id, e.g. "openai:text-embedding-3-small". */
  readonly provider: string;

  constructor(
    message: string,
    fields: { provider: string; retryable: boolean; status?: number; attempts?: number; cause?: unknown },
  ) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'EmbeddingProviderError';
    this.provider = fields.provider;
    this.retryable = fields.retryable;
    this.status = fields.status;
    this.attempts = fields.attempts ?? 1;
  }
}
