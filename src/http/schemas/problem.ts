// The problem+json body (RFC 9457) every error answers with, registered once under the id
// "Problem" and referenced from each route's error responses.
import Type from 'typebox';

export const PROBLEM_SCHEMA_ID = 'Problem';

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'URN naming the problem type' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'stable snake_case word to switch on, e.g. slug_taken' }),
    request_id: Type.String({ description: 'the X-Request-Id of the request, for support and logs' }),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          path: Type.String({ description: 'JSON pointer into the part of the request named by `in`' }),
          in: Type.Enum(['body', 'querystring', 'params', 'headers']),
          message: Type.String(),
        }),
      ),
    ),
    current_status: Type.Optional(Type.String({ description: 'with invalid_transition, tenant_inactive: the tenant\'s status' })),
    error_type: Type.Optional(Type.String({ description: 'with keycloak_failed: conflict, unauthorized, unavailable or bad_request' })),
    step: Type.Optional(Type.String({ description: 'with keycloak_failed: the provisioning step that failed' })),
    rotated_to: Type.Optional(Type.String({ description: 'with key_rotated: the id of the key that replaced this one, to rotate instead' })),
  },
  { $id: PROBLEM_SCHEMA_ID, title: 'Problem' },
);

const DESCRIPTIONS: Record<number, string> = {
  400: 'Malformed or invalid input (validation_failed, malformed_json)',
  401: 'No bearer token, or one that was refused (WWW-Authenticate: Bearer)',
  403: 'The token\'s roles do not allow this',
  404: 'Not found',
  405: 'Method not allowed on this path',
  409: 'Conflicts with the current state (or a request with this Idempotency-Key is still running)',
  413: 'Body over the size limit',
  415: 'Body is not application/json',
  422: 'The Idempotency-Key was used for a different request',
  429: 'Over the caller\'s rate limit; retry after Retry-After seconds',
  500: 'Unexpected failure; the body carries no internals',
  502: 'Keycloak failed; what failed is recorded and can be retried',
  503: 'A dependency (the database or the token issuer) is unavailable, or the replica is draining',
};

/** The error responses of a route (500 always), each application/problem+json of the one schema. */
export function problemResponses(...statuses: number[]) {
  return Object.fromEntries(
    [...statuses, 500].map((status) => [
      status,
      {
        description: DESCRIPTIONS[status] ?? 'Error',
        content: { 'application/problem+json': { schema: Type.Ref(PROBLEM_SCHEMA_ID) } },
      },
    ]),
  );
}
