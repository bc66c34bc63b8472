export type { EmbeddingConfig, EmbeddingProvider, ProbeResult } from './port.js';
export { EmbeddingProviderError } from './errors.js';
export {
  createEmbeddingProvider,
  type EmbeddingFactoryOptions,
  type HashingEmbeddingConfig,
} from './factory.js';
export { LocalEmbeddingProvider, type LocalEmbeddingOptions } from './local/index.js';
export { OpenAIEmbeddingProvider, type OpenAIEmbeddingOptions } from './openai/index.js';
export { HashingEmbeddingProvider, type HashingEmbeddingOptions } from './hashing/index.js';
