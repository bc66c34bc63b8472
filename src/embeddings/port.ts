/**
 * The embedding-provider port. Adapters: local/ (Universal Sentence Encoder lite in worker
 * threads, the default) and openai/ (any OpenAI-compatible embeddings API).
 */
export interface EmbeddingProvider {
  /** Stable description for logs and stats, e.g. "local:use-lite" or "openai:text-embedding-3-small". */
  readonly id: string;
  /** Vector length; known before the first call for local, after `probe()` for remote ones. */
  dimensions(): Promise<number>;
  /** One L2-normalised vector per text, in order. Retries transient failures itself. */
  embed(texts: string[], options?: EmbedOptions): Promise<Float32Array[]>;
  /** Releases workers, sockets. */
  close(): Promise<void>;
  /**
   * Optional (added after the first version of the port, so older fakes stay valid): one tiny
   * embedding that proves the provider works end to end (model loads, credentials and model name
   * are accepted) and learns the vector length. Called when a knowledge base is created.
   */
  probe?(options?: ProbeOptions): Promise<ProbeResult>;
}

export interface EmbedOptions {
  /** Aborts the call: work not started yet is withdrawn, and the call rejects with the reason. */
  signal?: AbortSignal;
  /**
   * `query` (a search is waiting for the answer) or `bulk` (a sync batch, a document upload; the
   * default). A provider with a shared queue serves queries first, so a search never waits behind
   * a sync's batch (the local provider does; see local/pool.ts). Optional, so providers and fakes
   * written before it stay valid: one that ignores it is still correct, only slower for searches.
   */
  priority?: 'query' | 'bulk';
  /**
   * Told what the call cost, once per request sent to the model, as the provider reports it
   * (OpenAI's `usage`). Optional, so providers and fakes written before it stay valid: one that
   * never calls it is metered by the caller instead, which counts the texts with the tokenizer
   * (embeddings/usage.ts) as one request per call.
   */
  onUsage?: (usage: EmbeddingUsage) => void;
  /**
   * Told how many of `texts` are embedded so far, as parts of the call finish (a sync run's
   * progress moves while a large batch is embedded). Optional both ways: a provider may never
   * call it (the caller then sees only the call's end), or call it with the same count twice;
   * the count never goes down.
   */
  onProgress?: (textsDone: number) => void;
}

/** What embedding cost: tokens billed and requests sent (API.md, "Cost and freshness"). */
export interface EmbeddingUsage {
  tokens: number;
  requests: number;
}

export interface ProbeOptions {
  signal?: AbortSignal;
  /**
   * One attempt, no retries, answered within this many ms (a provider that hangs must not hold a
   * knowledge-base creation for minutes of retried timeouts).
   */
  timeoutMs?: number;
}

/** What `probe()` learned. */
export interface ProbeResult {
  dimensions: number;
  /** The model that answered, when the provider reports it. */
  model?: string;
  /** Round trip of the probe, including a model load or connection set-up. */
  latencyMs: number;
}

/** Embedding configuration of a knowledge base (API.md, "Knowledge bases"). */
export interface EmbeddingConfig {
  provider: 'local' | 'openai';
  model?: string;
  dimensions?: number;
  base_url?: string;
  api_key?: string;
}
