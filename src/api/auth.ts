/**
 * Who a request acts for (API.md, "Accounts and keys"). With KBSYNC_ADMIN_KEY set, every route but
 * /health needs `Authorization: Bearer <key>`: an account's key for the account's own routes, the
 * admin key for admin routes (`config: { auth: 'admin' }`: accounts and keys; /metrics). Anything
 * missing, malformed, unknown or revoked gets the same 401, so a caller learns nothing about which
 * part was wrong. Without an admin key, every request acts for the default account (the server is
 * then loopback-only, config.ts) and admin routes are refused.
 */
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { AccountService } from '../accounts/service.js';
import { bearerToken, secretsEqual } from '../accounts/keys.js';
import { AppError } from '../core/errors.js';
import { errorBody } from './envelope.js';

/** The account that owns everything created without authentication (migration 8 creates it). */
export const DEFAULT_ACCOUNT = 'default';

/**
 * What a route needs when authentication is on: `account` (the default) an account's key;
 * `admin` the admin key (refused outright when authentication is off: accounts and keys mean
 * nothing then); `operator` the admin key (open when authentication is off: /metrics); `any`
 * either kind of key (API documentation); `public` nothing (/health).
 */
export type RouteAuth = 'account' | 'admin' | 'operator' | 'any' | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    /** The id of the API key the request came with (`admin` for the admin key); per-key rate limits use it. */
    apiKeyId?: string;
  }
}

const accounts = new WeakMap<FastifyRequest, string>();

/** The account a request acts for (set by the auth hook; every account route has one). */
export function accountOf(request: FastifyRequest): string {
  const account = accounts.get(request);
  if (account === undefined)
    throw new AppError('UNAUTHORIZED', 'Unauthorized', ['send Authorization: Bearer <api key>']);
  return account;
}

function routeAuth(request: FastifyRequest): RouteAuth {
  const configured = request.routeOptions.config?.auth;
  if (configured) return configured;
  const url = request.routeOptions.url ?? '';
  if (url === '/openapi.json' || url === '/docs' || url.startsWith('/docs/')) return 'any';
  return 'account';
}

function unauthorized(reply: FastifyReply, details = ['send Authorization: Bearer <api key>']): FastifyReply {
  return reply
    .code(401)
    .header('www-authenticate', 'Bearer')
    .send(errorBody('UNAUTHORIZED', 'Unauthorized', details));
}

export function authHook(adminKey: string | null, service: AccountService): onRequestAsyncHookHandler {
  return async (request, reply) => {
    const needs = routeAuth(request);
    if (needs === 'public') return;
    if (adminKey === null) {
      if (needs === 'admin') {
        return unauthorized(reply, [
          'accounts and API keys need authentication: start kbsync with KBSYNC_ADMIN_KEY set',
        ]);
      }
      accounts.set(request, DEFAULT_ACCOUNT);
      return;
    }
    const token = bearerToken(request.headers.authorization);
    if (token === null) return unauthorized(reply);
    const isAdmin = secretsEqual(token, adminKey);
    if (isAdmin) request.apiKeyId = 'admin';
    if (needs === 'admin' || needs === 'operator') return isAdmin ? undefined : unauthorized(reply);
    if (needs === 'any' && isAdmin) return;
    const found = isAdmin ? null : await service.authenticate(token);
    if (found === null) return unauthorized(reply);
    request.apiKeyId = found.keyId;
    accounts.set(request, found.accountId);
  };
}
