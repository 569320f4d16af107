// Building blocks shared by the resource schemas. Each is plain JSON Schema (TypeBox), so the
// same object validates requests, serializes responses, types handlers and becomes openapi.yaml.
import Type, { type Static, type TSchema } from 'typebox';
import { UUID_PATTERN } from '../../domain/ids.js';

/** A UUID as domain/ids.ts defines it (the format documents it; the pattern decides). */
export const Uuid = (options: { description?: string } = {}) => Type.String({ format: 'uuid', pattern: UUID_PATTERN, ...options });

export const Timestamp = (options: { description?: string } = {}) =>
  Type.String({ format: 'date-time', ...options });

/**
 * The schema, or null. A schema of one primitive type becomes `type: [t, "null"]` rather than
 * `anyOf`: the serializer must test each value against every branch of an anyOf, which made
 * nullable fields the costliest part of writing an answer.
 */
export function Nullable<T extends TSchema>(schema: T) {
  const type = (schema as { type?: unknown }).type;
  if (typeof type === 'string' && type !== 'object' && type !== 'array') {
    return Type.Unsafe<Static<T> | null>({ ...schema, type: [type, 'null'] });
  }
  return Type.Unsafe<Static<T> | null>(Type.Union([schema, Type.Null()]));
}

/**
 * Free text a person typed (names, ids from other systems): at least one visible character,
 * no control characters, bounded so nothing unbounded reaches the database or the logs.
 */
export const Text = (maxLength: number, options: { description?: string } = {}) =>
  Type.String({ minLength: 1, maxLength, pattern: '^(?=.*\\S)[^\\u0000-\\u001f\\u007f]+$', ...options });

/**
 * A $ref to a schema registered once by its $id (it appears once in openapi.yaml, under
 * components/schemas), typed as the schema itself so handlers stay type-checked.
 */
export function RefTo<T extends TSchema>(schema: T, options: { description?: string } = {}) {
  const id = (schema as { $id?: unknown }).$id;
  if (typeof id !== 'string') throw new Error('RefTo needs a schema with an $id');
  return Type.Unsafe<Static<T>>(Type.Ref(id, options));
}
