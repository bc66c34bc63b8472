export { OPENAI_DEFAULTS, OpenAIEmbeddingProvider, type OpenAIEmbeddingOptions } from './provider.js';
