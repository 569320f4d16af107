// The contract's types, as openapi-typescript writes them from openapi.yaml (src/generated/,
// made at build time), and the few names a caller reaches for most.
import type { components, operations, paths } from './generated/openapi.js';

export type { components, operations, paths };

/** Every problem `code` the registry can answer with: the enum of the contract's Problem schema. */
export type ProblemCode = components['schemas']['Problem']['code'];

/** An application/problem+json body (RFC 9457) as the registry writes it. */
export type Problem = components['schemas']['Problem'];

export type Tenant = components['schemas']['Tenant'];
