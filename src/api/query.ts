/** Query-string parsing with the same error envelope as bodies. */
import type { z } from 'zod';
import { problemsToError } from '../core/errors.js';
import { issuesToProblems } from '../core/validation.js';

export function parseQuery<T extends z.ZodType>(schema: T, query: unknown): z.infer<T> {
  const parsed = schema.safeParse(query ?? {}, { reportInput: true });
  if (!parsed.success) throw problemsToError(issuesToProblems(parsed.error.issues), 'Invalid query parameters');
  return parsed.data;
}
