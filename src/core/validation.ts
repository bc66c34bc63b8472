/**
 * Turns zod issues into the readable `details` sentences of the error envelope
 * ("job_name is required", "unknown field: conten_columns").
 */
import type { z } from 'zod';
import type { ErrorCode, Problem } from './errors.js';

function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

export function describeIssue(issue: z.core.$ZodIssue): string[] {
  const field = fieldPath(issue.path);
  const prefix = field === '' ? 'body' : field;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => `unknown field: ${field === '' ? k : `${field}.${k}`}`);
    case 'invalid_type':
      if (issue.input === undefined) return [`${prefix} is required`];
      return [`${prefix} must be ${article(issue.expected)}, got ${typeName(issue.input)}`];
    default:
      // Our schemas phrase their own messages with the field name first; zod's defaults do not.
      return [issue.message.startsWith(prefix) ? issue.message : `${prefix}: ${issue.message}`];
  }
}

export function issuesToProblems(issues: readonly z.core.$ZodIssue[], code: ErrorCode = 'INVALID_REQUEST'): Problem[] {
  return issues.flatMap((issue) => describeIssue(issue).map((detail) => ({ code, detail })));
}

/** Top-level field names that have at least one issue (their semantic checks are skipped). */
export function fieldsWithIssues(issues: readonly z.core.$ZodIssue[]): Set<string> {
  return new Set(issues.filter((i) => i.path.length > 0).map((i) => String(i.path[0])));
}

function article(expected: string): string {
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
