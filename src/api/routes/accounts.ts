/** Admin routes: accounts and their API keys (API.md, "Accounts and keys"); the admin key only. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccountService, CreateAccountBody } from '../../accounts/service.js';
import type { Services } from '../../app.js';
import { ok } from '../envelope.js';
import { CREATE_ACCOUNT } from '../openapi/examples.js';
import { operation } from '../openapi/operation.js';
import { dataOf, ref } from '../openapi/schemas.js';

type AccountParams = FastifyRequest<{ Params: { id: string } }>;
type KeyParams = FastifyRequest<{ Params: { id: string; key_id: string } }>;

const tag = 'accounts';
const config = { auth: 'admin' as const };
const account = { id: 'Account id (acct_…) or name' };
const NO_ACCOUNT = 'No account with that id or name (NOT_FOUND)';

export const accountRoutes = (services: Services) => async (app: FastifyInstance) => {
  const { accounts } = services;

  app.post(
    '/accounts',
    {
      config,
      schema: operation({
        operationId: 'createAccount',
        tag,
        method: 'POST',
        auth: 'admin',
        summary: 'Create an account',
        description:
          'Creates an account and its first API key. The key is shown once, in this answer; store it now.',
        body: { schema: CreateAccountBody, description: 'The account', example: CREATE_ACCOUNT },
        ok: { status: 201, description: 'Account created, with its first key', data: ref('NewApiKey') },
        errors: { 400: 'Invalid name (INVALID_REQUEST)', 409: 'An account with that name exists (CONFLICT)' },
      }),
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
      schema: operation({
        operationId: 'listAccounts',
        tag,
        method: 'GET',
        auth: 'admin',
        summary: 'List accounts',
        description: 'Every account (`default` owns what was created before authentication was on).',
        ok: {
          status: 200,
          description: 'The accounts',
          data: dataOf.list('accounts', ref('Account'), false),
        },
      }),
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
      schema: operation({
        operationId: 'createApiKey',
        tag,
        method: 'POST',
        auth: 'admin',
        summary: 'Create an API key',
        description:
          "Another key for an account, shown once; the account's other keys keep working, so keys rotate without downtime.",
        params: account,
        ok: { status: 201, description: 'Key created', data: ref('NewApiKey') },
        errors: { 404: NO_ACCOUNT },
      }),
    },
    async (request: AccountParams, reply) => {
      const created = await accounts.createKey(request.params.id);
      return ok(reply, 'API key created; store it now, it is not shown again', presentNewKey(created), 201);
    },
  );

  app.get(
    '/accounts/:id/keys',
    {
      config,
      schema: operation({
        operationId: 'listApiKeys',
        tag,
        method: 'GET',
        auth: 'admin',
        summary: "List an account's API keys",
        description: 'Ids, display prefixes and times; never the keys.',
        params: account,
        ok: { status: 200, description: 'The keys', data: dataOf.list('keys', ref('ApiKey'), false) },
        errors: { 404: NO_ACCOUNT },
      }),
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
      schema: operation({
        operationId: 'revokeApiKey',
        tag,
        method: 'DELETE',
        auth: 'admin',
        summary: 'Revoke an API key',
        description: 'At once: the next request with the key gets 401. Revoking again changes nothing.',
        params: { ...account, key_id: 'Key id (key_…)' },
        ok: { status: 200, description: 'The revoked key', data: ref('ApiKey') },
        errors: { 404: 'No such account, or no such key of it (NOT_FOUND)' },
      }),
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
