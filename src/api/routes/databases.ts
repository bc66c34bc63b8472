import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CreateDatabaseBody } from '../../core/schemas.js';
import type { Services } from '../../app.js';
import { DatabaseService } from '../../databases/service.js';
import { errorResponse, jsonSchema, successResponse } from '../docs.js';
import { ok } from '../envelope.js';
import { accountOf } from '../server.js';

type NameParams = FastifyRequest<{ Params: { name: string } }>;

export const databaseRoutes = (services: Services) => async (app: FastifyInstance) => {
  const { databases } = services;

  const create = async (request: FastifyRequest, reply: FastifyReply) => {
    const record = await databases.create(accountOf(request), request.body);
    return ok(reply, 'Database registered', DatabaseService.present(record), 201);
  };
  const schema = {
    tags: ['databases'],
    summary: 'Register a database (the connection is tested first)',
    body: jsonSchema(CreateDatabaseBody),
    response: { 201: successResponse('Registered'), 400: errorResponse, 409: errorResponse },
  };
  app.post('/databases/create', { schema }, create);
  app.post('/databases', { schema: { ...schema, summary: 'Alias of POST /databases/create' } }, create);

  app.get('/databases', { schema: { tags: ['databases'], summary: 'List databases' } }, async (request, reply) => {
    const list = await databases.list(accountOf(request));
    return ok(reply, 'Databases', { databases: list.map(DatabaseService.present) });
  });

  app.get('/databases/:name', { schema: { tags: ['databases'], summary: 'Get a database (password masked)' } }, async (request: NameParams, reply) => {
    return ok(reply, 'Database', DatabaseService.present(await databases.get(accountOf(request), request.params.name)));
  });

  app.get('/databases/:name/tables', { schema: { tags: ['databases'], summary: 'Tables with columns, types and primary key' } }, async (request: NameParams, reply) => {
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
  });

  app.delete('/databases/:name', { schema: { tags: ['databases'], summary: 'Delete a database (409 while jobs use it)' } }, async (request: NameParams, reply) => {
    await databases.delete(accountOf(request), request.params.name);
    return ok(reply, 'Database deleted', { name: request.params.name });
  });
};
