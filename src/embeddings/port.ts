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
  embed(texts: string[], options?: { signal?: AbortSignal }): Promise<Float32Array[]>;
  /** Releases workers, sockets. */
  close(): Promise<void>;
}

/** Embedding configuration of a knowledge base (API.md, "Knowledge bases"). */
export interface EmbeddingConfig {
  provider: 'local' | 'openai';
  model?: string;
  dimensions?: number;
  base_url?: string;
  api_key?: string;
}
