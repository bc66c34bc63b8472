/**
 * Query-string parsing with the same error envelope, and the same sentences, as bodies:
 * "status must be one of …, got 'x'", "unknown query parameter: foo", "limit must be given once".
 */
import type { z } from 'zod';
import { type Problem, problemsToError } from '../core/errors.js';
import { describeIssue } from '../core/validation.js';

export function parseQuery<T extends z.ZodType>(schema: T, query: unknown): z.infer<T> {
  const parsed = schema.safeParse(query ?? {}, { reportInput: true });
  if (!parsed.success) throw problemsToError(parsed.error.issues.flatMap(queryProblems), 'Invalid query parameters');
  return parsed.data;
}

function queryProblems(issue: z.core.$ZodIssue): Problem[] {
  const problem = (detail: string): Problem => ({ code: 'INVALID_REQUEST', detail });
  // A parameter is not a field of a body, and `?a=1&a=2` arrives as an array: say what happened.
  if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => problem(`unknown query parameter: ${k}`));
  if (issue.path.length === 1 && Array.isArray(issue.input)) return [problem(`${String(issue.path[0])} must be given once`)];
  return describeIssue(issue).map(problem);
}
