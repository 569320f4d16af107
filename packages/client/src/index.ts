// @tenant-registry/client: a typed client for the tenant-registry API (see README.md).
export { createRegistryClient, takesIdempotencyKey, type RegistryClient, type RegistryClientOptions, type TokenSource } from './client.js';
export { clientCredentials, TokenRequestError, type ClientCredentialsOptions, type TokenProvider } from './client-credentials.js';
export { errorFor, isProblem, isProblemBody, RegistryError, RegistryProblem, unwrap, type Unwrapped } from './problem.js';
export { paginate } from './paginate.js';
export { isRetrySafe, retryAfterMs, type RetryEvent, type RetryOptions } from './retry.js';
export { IDEMPOTENT_OPERATIONS, PROBLEM_CODES } from './generated/spec.js';
export type { components, operations, paths, Problem, ProblemCode, Tenant } from './types.js';
