/** Admin routes: accounts and their API keys (API.md, "Accounts and keys"); the admin key only. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccountService, CreateAccountBody } from '../../accounts/service.js';
import type { Services } from '../../app.js';
import { errorResponse, jsonSchema } from '../docs.js';
import { ok } from '../envelope.js';

type AccountParams = FastifyRequest<{ Params: { id: string } }>;
type KeyParams = FastifyRequest<{ Params: { id: string; key_id: string } }>;

const tags = ['accounts'];
const security = [{ bearerAuth: [] }];
const config = { auth: 'admin' as const };
const accountParam = {
  type: 'object',
  properties: { id: { type: 'string', description: 'account id or name' } },
  required: ['id'],
};
const keyParams = {
  type: 'object',
  properties: {
    id: { type: 'string', description: 'account id or name' },
    key_id: { type: 'string', description: 'key id (key_…)' },
  },
  required: ['id', 'key_id'],
};

const envelope = (description: string, data: Record<string, unknown>) => ({
  description,
  type: 'object',
  properties: { success: { type: 'boolean', enum: [true] }, message: { type: 'string' }, data },
});
const account = {
  type: 'object',
  properties: {
    account_id: { type: 'string' },
    name: { type: 'string' },
    created_at: { type: 'string', format: 'date-time' },
  },
};
const key = {
  type: 'object',
  properties: {
    key_id: { type: 'string' },
    prefix: { type: 'string', description: 'the first characters of the key, to tell keys apart' },
    created_at: { type: 'string', format: 'date-time' },
    revoked_at: { type: 'string', format: 'date-time', nullable: true },
  },
};
const newKey = {
  type: 'object',
  properties: {
    account_id: { type: 'string' },
    name: { type: 'string' },
    key_id: { type: 'string' },
    prefix: { type: 'string' },
    api_key: { type: 'string', description: 'the key itself (kbs_…): shown once, store it now' },
  },
};

export const accountRoutes = (services: Services) => async (app: FastifyInstance) => {
  const { accounts } = services;

  app.post(
    '/accounts',
    {
      config,
      schema: {
        tags,
        summary: 'Create an account and its first API key (the key is shown once); admin key only',
        security,
        body: jsonSchema(CreateAccountBody),
        response: {
          201: envelope('Account created', newKey),
          400: errorResponse,
          401: errorResponse,
          409: errorResponse,
        },
      },
    },
    async (request, reply) => {
      const created = await accounts.create(request.body);
      return ok(
        reply,
        'Account created; store the API key now, it is not shown again',
        presentNewKey(created),
        201,
      );
    },
  );

  app.get(
    '/accounts',
    {
      config,
      schema: {
        tags,
        summary: 'List accounts; admin key only',
        security,
        response: {
          200: envelope('Accounts', {
            type: 'object',
            properties: { accounts: { type: 'array', items: account } },
          }),
          401: errorResponse,
        },
      },
    },
    async (_request, reply) => {
      const list = await accounts.list();
      return ok(reply, 'Accounts', { accounts: list.map(AccountService.presentAccount) });
    },
  );

  app.post(
    '/accounts/:id/keys',
    {
      config,
      schema: {
        tags,
        summary: 'Create another API key for an account (shown once); admin key only',
        security,
        params: accountParam,
        response: { 201: envelope('Key created', newKey), 401: errorResponse, 404: errorResponse },
      },
    },
    async (request: AccountParams, reply) => {
      const created = await accounts.createKey(request.params.id);
      return ok(
        reply,
        'API key created; store it now, it is not shown again',
        presentNewKey(created),
        201,
      );
    },
  );

  app.get(
    '/accounts/:id/keys',
    {
      config,
      schema: {
        tags,
        summary: "An account's API keys: ids, prefixes and times, never the keys; admin key only",
        security,
        params: accountParam,
        response: {
          200: envelope('Keys', { type: 'object', properties: { keys: { type: 'array', items: key } } }),
          401: errorResponse,
          404: errorResponse,
        },
      },
    },
    async (request: AccountParams, reply) => {
      const keys = await accounts.listKeys(request.params.id);
      return ok(reply, 'API keys', { keys: keys.map(AccountService.presentKey) });
    },
  );

  app.delete(
    '/accounts/:id/keys/:key_id',
    {
      config,
      schema: {
        tags,
        summary: 'Revoke an API key (at once: the next request with it gets 401); admin key only',
        security,
        params: keyParams,
        response: { 200: envelope('Key revoked', key), 401: errorResponse, 404: errorResponse },
      },
    },
    async (request: KeyParams, reply) => {
      const revoked = await accounts.revokeKey(request.params.id, request.params.key_id);
      return ok(reply, 'API key revoked', AccountService.presentKey(revoked));
    },
  );
};

/** A key just made, with its account: the only answer that ever shows the key itself. */
function presentNewKey(created: Awaited<ReturnType<AccountService['createKey']>>) {
  return {
    account_id: created.account.id,
    name: created.account.name,
    key_id: created.key.record.id,
    prefix: created.key.record.prefix,
    api_key: created.key.key,
  };
}
