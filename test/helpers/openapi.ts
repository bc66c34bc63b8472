/**
 * Checks HTTP answers against the app's own OpenAPI document (`GET /openapi.json`), so every test
 * that talks to the API through test/helpers/app.ts is also a check that the document tells the
 * truth: the route is documented, the status is one the operation lists, and the body validates
 * against that status's schema (ajv, OpenAPI 3.0 dialect: `nullable`, `format: date-time`).
 *
 * Not checked: /openapi.json and /docs (the documentation itself), and answers of paths the
 * document does not have that are the dashboard's (`/` and its static assets, not JSON). Any other
 * undocumented path must answer the 404 NOT_FOUND envelope of an unknown route.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS with `exports.default`; under NodeNext its default import is the module.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv,
) => Ajv;

interface Operation {
  method: string;
  template: string;
  pattern: RegExp;
  /** Static characters in the template: find-my-way prefers static segments over parameters. */
  specificity: number;
  responses: Record<string, { content?: Record<string, unknown> }>;
}

export interface Answer {
  status: number;
  contentType: string | undefined;
  /** Parsed JSON, or the raw text when the body is not JSON. */
  body: unknown;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
/** The documentation itself, and the dashboard (another module's routes, hidden from the document). */
const EXEMPT = /^\/(openapi\.json|docs)(\/|$)/;

export class OpenApiChecker {
  readonly #ajv: Ajv;
  readonly #operations: Operation[] = [];
  readonly #validators = new Map<string, ValidateFunction>();

  constructor(readonly document: Record<string, any>) {
    this.#ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
    addFormats(this.#ajv);
    this.#ajv.addSchema(document, 'openapi.json');
    for (const [template, item] of Object.entries<Record<string, any>>(document.paths ?? {})) {
      const source = template
        .split(/(\{[^}]+\})/)
        .map((part) => (part.startsWith('{') ? '[^/]+' : part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
        .join('');
      for (const method of HTTP_METHODS) {
        const op = item[method];
        if (!op) continue;
        this.#operations.push({
          method: method.toUpperCase(),
          template,
          pattern: new RegExp(`^${source}$`),
          specificity: template.replace(/\{[^}]+\}/g, '').length,
          responses: op.responses ?? {},
        });
      }
    }
  }

  /** The documented operation that serves `method path`, as the router would pick it. */
  operation(method: string, url: string): Operation | null {
    const path = url.split('?')[0]!;
    const candidates = this.#operations.filter(
      (op) => op.method === method.toUpperCase() && op.pattern.test(path),
    );
    candidates.sort((a, b) => b.specificity - a.specificity);
    return candidates[0] ?? null;
  }

  /** Problems with an answer (empty when it is documented and valid). */
  check(method: string, url: string, answer: Answer): string[] {
    const path = url.split('?')[0]!;
    if (EXEMPT.test(path)) return [];
    const where = `${method.toUpperCase()} ${path} → ${answer.status}`;
    const json = answer.contentType?.includes('json') ?? false;
    const op = this.operation(method, url);
    if (op === null) {
      // The dashboard and its assets (HTML, scripts) are not API routes.
      if (!json && answer.status < 400) return [];
      if (answer.status === 404 && (answer.body as any)?.error?.code === 'NOT_FOUND') {
        return this.#validate(['components', 'schemas', 'Error'], answer.body, where);
      }
      return [`${where}: undocumented route (no operation in /openapi.json serves it)`];
    }
    const response = op.responses[String(answer.status)];
    if (response === undefined) {
      return [
        `${where}: status ${answer.status} is not documented for ${op.method} ${op.template} (documented: ${Object.keys(op.responses).join(', ')})`,
      ];
    }
    const mediaTypes = Object.keys(response.content ?? {});
    const type = (answer.contentType ?? '').split(';')[0]!.trim();
    if (mediaTypes.length === 0) return [];
    if (!mediaTypes.includes(type))
      return [`${where}: content type '${type}' is not documented (documented: ${mediaTypes.join(', ')})`];
    if (!json) return [];
    const at = [
      'paths',
      op.template,
      op.method.toLowerCase(),
      'responses',
      String(answer.status),
      'content',
      type,
      'schema',
    ];
    return this.#validate(at, answer.body, where);
  }

  /** A validator for the schema at a JSON pointer of the document, given as its parts (unescaped). */
  validator(at: string[]): ValidateFunction {
    const ref = `openapi.json#/${at.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
    let validate = this.#validators.get(ref);
    if (!validate) {
      validate = this.#ajv.compile({ $ref: ref });
      this.#validators.set(ref, validate);
    }
    return validate;
  }

  #validate(at: string[], body: unknown, where: string): string[] {
    const validate = this.validator(at);
    if (validate(body)) return [];
    const errors = (validate.errors ?? [])
      .slice(0, 8)
      .map(
        (e) => `${e.instancePath || '(body)'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`,
      );
    return [
      `${where}: the body does not match /openapi.json: ${errors.join('; ')}; body: ${JSON.stringify(body).slice(0, 600)}`,
    ];
  }
}

/** One checker per distinct document (apps with the same configuration share it: compiling is the slow part). */
const checkers = new Map<string, OpenApiChecker>();

export function checkerFor(documentText: string): OpenApiChecker {
  let checker = checkers.get(documentText);
  if (!checker) {
    checker = new OpenApiChecker(JSON.parse(documentText));
    checkers.set(documentText, checker);
  }
  return checker;
}
