/** zod schemas → JSON Schema for the OpenAPI document (validation itself stays in zod). */
import { z } from 'zod';

export function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  delete out.$schema;
  return out;
}

const envelope = (data: Record<string, unknown>) => ({
  type: 'object',
  properties: { success: { type: 'boolean' }, message: { type: 'string' }, data },
});

export const errorResponse = {
  description: 'Error envelope',
  type: 'object',
  properties: {
    success: { type: 'boolean', enum: [false] },
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        details: { type: 'array', items: { type: 'string' } },
      },
    },
  },
};

export const successResponse = (description: string) => ({
  description,
  ...envelope({ type: 'object', additionalProperties: true }),
});
