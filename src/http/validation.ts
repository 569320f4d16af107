// Request validation. Two Ajv instances, because the parts of a request differ: a query string
// or a path only carries text, so "limit=20" must become the number 20; a JSON body carries real
// types, and turning {"name": 123} into "123" would hide a client's bug. Neither drops unknown
// fields silently: a schema that forbids them makes the request fail with the field named.
import { isIP } from 'node:net';
import { Ajv, type ErrorObject, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { fullFormats } from 'ajv-formats/dist/formats.js';
import type { FastifySchemaCompiler } from 'fastify';
import type { FieldError } from '../problems.js';
import { SHARED_SCHEMAS } from './schemas/components.js';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function makeAjv(options: Options): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    removeAdditional: false,
    useDefaults: true,
    // OpenAPI's "example(s)" and "description" are annotations, not validation keywords.
    strict: false,
    ...options,
  });
  addFormats(ajv);
  // An address is what Node's isIP says it is (the same test that decided source_ip when it was
  // one "ip" format), so `anyOf: [ipv4, ipv6]`, the spelling every validator knows, accepts what
  // that format did, no more and no less.
  ajv.addFormat('ipv4', { type: 'string', validate: (value: string) => isIP(value) === 4 });
  ajv.addFormat('ipv6', { type: 'string', validate: (value: string) => isIP(value) === 6 });
  ajv.addFormat('date-time', { type: 'string', validate: isStorableTimestamp });
  ajv.addFormat('date', { type: 'string', validate: isStorableDate });
  for (const schema of SHARED_SCHEMAS) ajv.addSchema(schema);
  return ajv;
}

const RFC3339 = fullFormats['date-time'] as { validate: (value: string) => boolean };

/**
 * RFC 3339 as JSON Schema means it, narrowed to what both JavaScript and PostgreSQL can hold:
 * a leap second (23:59:60) has no JavaScript Date, year 0000 is out of PostgreSQL's range, and
 * an offset can carry 9999-12-31 into year 10000 in UTC, which a Date writes as +010000-….
 */
export function isStorableTimestamp(value: string): boolean {
  if (!RFC3339.validate(value)) return false;
  const time = Date.parse(value);
  if (Number.isNaN(time)) return false;
  const year = new Date(time).getUTCFullYear();
  return year >= 1 && year <= 9999;
}

const FULL_DATE = fullFormats.date as { validate: (value: string) => boolean };

/** An RFC 3339 full-date that PostgreSQL can hold (not year 0000). */
export function isStorableDate(value: string): boolean {
  return FULL_DATE.validate(value) && !value.startsWith('0000');
}

const bodyAjv = makeAjv({ coerceTypes: false });
const textAjv = makeAjv({ coerceTypes: 'array' });

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object);

type RequestPart = FieldError['in'];

/**
 * An unknown field's name as the error names it. A client that pastes a secret where a name
 * belongs ({"bp_...": true}) must not get it back in an answer that may end up in logs, and no
 * name is echoed at length.
 */
function displayedName(name: string): string {
  if (/bp_[0-9A-Za-z]{8,}|eyJ[A-Za-z0-9_-]{10,}/.test(name)) return '(redacted)';
  return name.length > 64 ? `${name.slice(0, 64)}…` : name;
}

/**
 * Field errors reported in one answer. A hostile body can break its schema twenty-five thousand
 * times (one unknown field each); listing them all made a 2.4 MB answer. The first few tell a
 * client what to fix; the detail says how many there were.
 */
export const MAX_FIELD_ERRORS = 10;
// A path is built from the body's own keys; each is cut (displayedName) and so is the whole.
const MAX_PATH_LENGTH = 256;

const boundedPath = (path: string) => (path.length > MAX_PATH_LENGTH ? `${path.slice(0, MAX_PATH_LENGTH)}…` : path);

/**
 * Ajv's errors, one per thing to fix. An `if` that held reports itself beside its `then`'s own
 * errors, which name the field (actor is required), so it is left out. A value that matches no
 * branch of an anyOf is one error, saying what each branch wanted ("must match format "ipv4" or
 * must match format "ipv6""), not one per branch and one more for the anyOf.
 */
function oneErrorEach(errors: ErrorObject[]): ErrorObject[] {
  const anyOfs = errors.filter((error) => error.keyword === 'anyOf');
  const branchOf = (error: ErrorObject) =>
    anyOfs.find((anyOf) => anyOf.instancePath === error.instancePath && error.schemaPath.startsWith(`${anyOf.schemaPath}/`));
  const wanted = new Map<ErrorObject, string[]>();
  for (const error of errors) {
    const anyOf = error.keyword === 'anyOf' ? undefined : branchOf(error);
    if (anyOf && error.message) wanted.set(anyOf, [...new Set([...(wanted.get(anyOf) ?? []), error.message])]);
  }
  return errors
    .filter((error) => error.keyword !== 'if' && (error.keyword === 'anyOf' || !branchOf(error)))
    .map((error) => (wanted.has(error) ? { ...error, message: wanted.get(error)!.join(' or ') } : error));
}

/** Turns Ajv's errors into field errors whose path names the offending field itself (the first MAX_FIELD_ERRORS). */
export function fieldErrors(errors: ErrorObject[], part: RequestPart): FieldError[] {
  return oneErrorEach(errors).slice(0, MAX_FIELD_ERRORS).map((error) => {
    let path = error.instancePath;
    let message = error.message ?? 'is invalid';
    if (error.keyword === 'required') {
      path += `/${String(error.params.missingProperty)}`;
      message = 'is required';
    } else if (error.keyword === 'additionalProperties') {
      path += `/${displayedName(String(error.params.additionalProperty))}`;
      message = 'is not a known field';
    } else if (error.keyword === 'pattern') {
      message = 'has a character or form the field does not allow';
    }
    return { path: path === '' ? '/' : boundedPath(path), in: part, message };
  });
}
