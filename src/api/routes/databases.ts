import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CreateDatabaseBody } from '../../core/schemas.js';
import type { Services } from '../../app.js';
import { DatabaseService } from '../../databases/service.js';
import { ok } from '../envelope.js';
import { CREATE_DATABASE } from '../openapi/examples.js';
import { operation } from '../openapi/operation.js';
import { dataOf, ref } from '../openapi/schemas.js';
import { accountOf } from '../server.js';

type NameParams = FastifyRequest<{ Params: { name: string } }>;

const tag = 'databases';
const name = { name: 'Database name' };
const NO_DATABASE = 'No database with that name in this account (NOT_FOUND)';

const createSpec = {
  tag,
  method: 'POST',
  description:
    'Registers a source database: `parameters` either `{url}` or `{host, port, user, password, database, schema?, ssl?}`; ' +
    'SQLite takes `{path}` inside KBSYNC_SQLITE_ROOTS. The connection is tested first; the password is stored encrypted and never returned.',
  body: { schema: CreateDatabaseBody, description: 'The database', example: CREATE_DATABASE },
  ok: { status: 201, description: 'Database registered', data: ref('Database') },
  errors: {
    400: "Invalid body (INVALID_REQUEST), or the database could not be reached with these parameters (CONNECTION_FAILED, with the driver's reason)",
    409: 'A database with that name exists (DUPLICATE_DATABASE)',
  },
} as const;

export const databaseRoutes = (services: Services) => async (app: FastifyInstance) => {
  const { databases } = services;

  const create = async (request: FastifyRequest, reply: FastifyReply) => {
    const record = await databases.create(accountOf(request), request.body);
    return ok(reply, 'Database registered', DatabaseService.present(record), 201);
  };
  app.post(
    '/databases/create',
    { schema: operation({ ...createSpec, operationId: 'createDatabase', summary: 'Register a database' }) },
    create,
  );
  app.post(
    '/databases',
    {
      schema: operation({
        ...createSpec,
        operationId: 'createDatabaseAlias',
        summary: 'Register a database (alias of POST /databases/create)',
      }),
    },
    create,
  );

  app.get(
    '/databases',
    {
      schema: operation({
        operationId: 'listDatabases',
        tag,
        method: 'GET',
        summary: 'List databases',
        description: "The account's registered databases, secrets masked.",
        ok: {
          status: 200,
          description: 'The databases',
          data: dataOf.list('databases', ref('Database'), false),
        },
      }),
    },
    async (request, reply) => {
      const list = await databases.list(accountOf(request));
      return ok(reply, 'Databases', { databases: list.map(DatabaseService.present) });
    },
  );

  app.get(
    '/databases/:name',
    {
      schema: operation({
        operationId: 'getDatabase',
        tag,
        method: 'GET',
        summary: 'Get a database',
        description: 'One registered database; the password (or the password in its URL) shown as `****`.',
        params: name,
        ok: { status: 200, description: 'The database', data: ref('Database') },
        errors: { 404: NO_DATABASE },
      }),
    },
    async (request: NameParams, reply) => {
      return ok(
        reply,
        'Database',
        DatabaseService.present(await databases.get(accountOf(request), request.params.name)),
      );
    },
  );

  app.get(
    '/databases/:name/tables',
    {
      schema: operation({
        operationId: 'listDatabaseTables',
        tag,
        method: 'GET',
        summary: "List a database's tables",
        description:
          'The tables of a registered database, with their columns, types, primary key and NOT NULL unique keys.',
        params: name,
        ok: { status: 200, description: 'The tables', data: dataOf.list('tables', ref('Table'), false) },
        errors: {
          400: 'A malformed URL (INVALID_REQUEST), or the database could not be reached (CONNECTION_FAILED)',
          404: NO_DATABASE,
        },
      }),
    },
    async (request: NameParams, reply) => {
      const tables = await databases.tables(accountOf(request), request.params.name);
      return ok(reply, 'Tables', {
        tables: tables.map((t) => ({
          schema: t.schema,
          name: t.name,
          columns: t.columns.map((c) => ({ name: c.name, type: c.type, kind: c.kind, nullable: c.nullable })),
          primary_key: t.primaryKey,
          unique_keys: t.uniqueKeys,
        })),
      });
    },
  );

  app.delete(
    '/databases/:name',
    {
      schema: operation({
        operationId: 'deleteDatabase',
        tag,
        method: 'DELETE',
        summary: 'Delete a database',
        description:
          'Forgets a registered database (nothing at the source changes); refused while a job reads from it.',
        params: name,
        ok: { status: 200, description: 'Database deleted', data: dataOf.object({ name: dataOf.string() }) },
        errors: { 404: NO_DATABASE, 409: 'A job uses the database (CONFLICT); delete the job first' },
      }),
    },
    async (request: NameParams, reply) => {
      await databases.delete(accountOf(request), request.params.name);
      return ok(reply, 'Database deleted', { name: request.params.name });
    },
  );
};
