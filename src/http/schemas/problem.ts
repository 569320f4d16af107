// The problem+json body (RFC 9457) every error answers with, registered once under the id
// "Problem" and referenced from each route's error responses.
import { KEYCLOAK_ERROR_TYPES, PROVISION_STEPS } from '../../keycloak/adapter.js';
import Type from 'typebox';
import { PROBLEM_CODES, PROBLEMS, REQUEST_PARTS, type ProblemCode } from '../../problems.js';
import { byStatus } from '../declared-problems.js';
import { RefTo } from './parts.js';
import { TenantStatusSchema } from './tenant.js';

export const PROBLEM_SCHEMA_ID = 'Problem';

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'URN naming the problem type' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.Enum(PROBLEM_CODES, { description: 'stable snake_case word to switch on (src/problems.ts); each answer lists its own' }),
    request_id: Type.String({ description: 'the X-Request-Id of the request, for support and logs' }),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          path: Type.String({ description: 'JSON pointer into the part of the request named by `in`' }),
          in: Type.Enum(REQUEST_PARTS),
          message: Type.String(),
        }),
      ),
    ),
    current_status: Type.Optional(RefTo(TenantStatusSchema, { description: 'with invalid_transition, tenant_inactive: the tenant\'s status' })),
    error_type: Type.Optional(Type.Enum(KEYCLOAK_ERROR_TYPES, { description: 'with keycloak_failed: what kind of failure' })),
    step: Type.Optional(Type.Enum(PROVISION_STEPS, { description: 'with keycloak_failed: the provisioning step that failed' })),
    rotated_to: Type.Optional(Type.String({ description: 'with key_rotated: the id of the key that replaced this one, to rotate instead' })),
  },
  { $id: PROBLEM_SCHEMA_ID, title: 'Problem' },
);

/**
 * The error responses of a route, one per status: application/problem+json of the one schema,
 * its `code` narrowed to the codes the route answers with at that status, each described.
 */
export function problemResponses(codes: readonly ProblemCode[]) {
  return Object.fromEntries(
    [...byStatus(codes)].map(([status, atStatus]) => [
      status,
      {
        description: atStatus.map((code) => `${code}: ${PROBLEMS[code].meaning}`).join('; '),
        content: {
          'application/problem+json': {
            schema: { allOf: [Type.Ref(PROBLEM_SCHEMA_ID), { type: 'object', properties: { code: { enum: atStatus } } }] },
          },
        },
      },
    ]),
  );
}
