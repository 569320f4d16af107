// @tenant-registry/verify: API key verification inside a headless product's own process.
// The framework adapters are separate entry points (@tenant-registry/verify/fastify, /connect),
// so this one imports no framework.
export { createKeyVerifier } from './verifier.js';
export type { KeyVerifier, KeyVerifierOptions, VerifierStats, WhenUnreachable } from './verifier.js';
export { VERIFY_CODES } from './answer.js';
export type { Answer, Question, VerifyCode } from './answer.js';
export { keyFromHeaders, refusalFor } from './http.js';
export { keepTickObjectShape } from './tick-shape.js';
export type { HeaderBag, Refusal } from './http.js';
