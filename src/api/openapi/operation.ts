/**
 * One OpenAPI operation from a short description next to its route: operationId, tag, summary and
 * description, the request schemas (from the zod schemas that validate them), the 2xx envelope with
 * its exact `data`, and every error status the route can answer. The statuses every route shares
 * are added here, once, from what the server does:
 *
 * - 400 for any route with a path parameter, a query string or a body (a bad URL escape, malformed
 *   JSON), 413 and 415 for any route that reads a body (POST, PATCH, DELETE);
 * - 401 unless the route is public (with authentication on; admin routes always);
 * - 429 RATE_LIMITED unless the route is exempt from the per-client limit (/health, /metrics);
 * - 500 INTERNAL_ERROR, and 503 STORE_UNAVAILABLE for routes that use the store.
 */
import { z } from 'zod';
import type { RouteAuth } from '../auth.js';
import { type JsonSchema, ref } from './schemas.js';

export type Tag = 'jobs' | 'databases' | 'knowledge bases' | 'accounts' | 'system';

export type ErrorStatus = 400 | 401 | 404 | 409 | 413 | 415 | 429 | 500 | 503;

export interface OperationSpec {
  operationId: string;
  tag: Tag;
  summary: string;
  description: string;
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Path parameters: name → description. */
  params?: Record<string, string>;
  query?: z.ZodType;
  body?: { schema: z.ZodType; description: string; example?: unknown };
  /**
   * The success answer: its status, what it means, the `data` schema and an optional example of
   * `data`; or, with `text`, a body in that media type (not the envelope: /metrics).
   */
  ok: {
    status: 200 | 201 | 202;
    description: string;
    data: JsonSchema;
    example?: unknown;
    message?: string;
    text?: string;
  };
  /**
   * A second success answer for a mode of the request (create with `dry_run: true` answers 200
   * with an estimate instead of 201 with the job); its status differs from `ok`'s.
   */
  alsoOk?: { status: 200 | 201 | 202; description: string; data: JsonSchema; example?: unknown; message?: string };
  /** Route-specific error statuses, with the codes they carry; they replace the shared wording. */
  errors?: Partial<Record<ErrorStatus, string>>;
  /** Who may call it (api/auth.ts); default `account`. */
  auth?: RouteAuth;
  /** Not counted by the per-client rate limit (api/admission.ts EXEMPT). */
  unlimited?: boolean;
  /** Does not touch the store (no 503). */
  storeless?: boolean;
}

/** The schema object a Fastify route takes (`{ schema }`); @fastify/swagger turns it into the operation. */
export function operation(spec: OperationSpec): Record<string, unknown> {
  const auth = spec.auth ?? 'account';
  const readsBody = spec.method !== 'GET';
  const errors: Partial<Record<ErrorStatus, string>> = {};
  if (spec.params || spec.query || spec.body || readsBody) {
    errors[400] = 'Invalid request (INVALID_REQUEST): malformed JSON, or a malformed URL';
  }
  if (auth !== 'public') errors[401] = UNAUTHORIZED[auth];
  if (readsBody) {
    errors[413] = 'The body is larger than the limit (INVALID_REQUEST)';
    errors[415] = 'A body that is not JSON: send Content-Type: application/json (INVALID_REQUEST)';
  }
  if (!spec.unlimited && auth !== 'public') {
    errors[429] = 'Too many requests from this client (RATE_LIMITED); retry after Retry-After seconds';
  }
  if (auth !== 'public')
    errors[500] = 'A bug (INTERNAL_ERROR); the message carries the request id to find it in the log';
  if (!spec.storeless)
    errors[503] =
      'The store cannot be written, e.g. a full disk (STORE_UNAVAILABLE); nothing was half-written';
  Object.assign(errors, spec.errors);

  const response: Record<string, unknown> = {
    [spec.ok.status]: spec.ok.text
      ? { description: spec.ok.description, content: { [spec.ok.text]: { schema: spec.ok.data } } }
      : envelope(spec.ok.description, spec.ok.data, spec.ok.example, spec.ok.message),
  };
  if (spec.alsoOk) {
    const also = spec.alsoOk;
    response[also.status] = envelope(also.description, also.data, also.example, also.message);
  }
  for (const [status, description] of Object.entries(errors).sort(([a], [b]) => Number(a) - Number(b))) {
    response[status] = errorResponse(Number(status) as ErrorStatus, description!);
  }
  return {
    operationId: spec.operationId,
    tags: [spec.tag],
    summary: spec.summary,
    description: spec.description,
    ...(auth === 'public' ? { security: [] } : auth === 'admin' ? { security: [{ bearerAuth: [] }] } : {}),
    ...(spec.params ? { params: pathParams(spec.params) } : {}),
    ...(spec.query ? { querystring: requestSchema(spec.query) } : {}),
    ...(spec.body
      ? {
          body: {
            ...requestSchema(spec.body.schema),
            description: spec.body.description,
            ...(spec.body.example === undefined ? {} : { examples: [spec.body.example] }),
          },
        }
      : {}),
    response,
  };
}

/** The success envelope with its exact `data`. */
export function envelope(
  description: string,
  data: JsonSchema,
  example?: unknown,
  message?: string,
): JsonSchema {
  return {
    description,
    type: 'object',
    properties: {
      success: { type: 'boolean', enum: [true] },
      message: { type: 'string', ...(message ? { example: message } : {}) },
      data,
    },
    required: ['success', 'message', 'data'],
    additionalProperties: false,
    ...(example === undefined
      ? {}
      : { examples: [{ success: true, message: message ?? description, data: example }] }),
  };
}

/** An error status: the shared error schema, with the headers that come with it. */
export function errorResponse(status: ErrorStatus, description: string): JsonSchema {
  const headers =
    status === 429
      ? { 'Retry-After': { type: 'integer', minimum: 0, description: 'Seconds to wait before retrying' } }
      : status === 401
        ? { 'WWW-Authenticate': { type: 'string', description: 'Bearer' } }
        : undefined;
  return { description, ...(headers ? { headers } : {}), ...ref('Error') };
}

const UNAUTHORIZED: Record<Exclude<RouteAuth, 'public'>, string> = {
  account:
    'Authentication is on (KBSYNC_ADMIN_KEY) and the API key is missing, unknown or revoked (UNAUTHORIZED); the same answer whatever was wrong',
  any: 'Authentication is on and no valid key was sent (UNAUTHORIZED)',
  admin:
    'Not the admin key, or authentication is off: accounts and keys need KBSYNC_ADMIN_KEY (UNAUTHORIZED)',
  operator: 'Authentication is on and this is not the admin key (UNAUTHORIZED)',
};

function pathParams(params: Record<string, string>): JsonSchema {
  return {
    type: 'object',
    properties: Object.fromEntries(
      Object.entries(params).map(([name, description]) => [
        name,
        { type: 'string', minLength: 1, description },
      ]),
    ),
    required: Object.keys(params),
  };
}

/**
 * A zod request schema as JSON Schema (OpenAPI 3.0 dialect). `io: 'input'`: what a client sends,
 * before transforms; `$schema` is not allowed inside an OpenAPI document.
 */
export function requestSchema(schema: z.ZodType): JsonSchema {
  const out = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
  }) as JsonSchema;
  delete out.$schema;
  return out;
}
