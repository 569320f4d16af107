// POST /dev/token and GET /dev/jwks.json: the embedded development issuer's endpoints. They exist
// only when the service runs it (APP_ENV=dev without KEYCLOAK_ISSUER) and are left out of
// openapi.yaml, which describes the service as it runs anywhere else.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { DevIssuer } from '../auth/dev-issuer.js';
import { Text, Uuid } from './schemas/common.js';

const DevTokenBody = Type.Object(
  {
    sub: Type.Optional(Text(200)),
    name: Type.Optional(Text(200)),
    roles: Type.Array(Text(100), { maxItems: 20 }),
    tenant_id: Type.Optional(Uuid()),
  },
  { additionalProperties: false },
);

export const devTokenRoutes: FastifyPluginAsyncTypebox<{ issuer: DevIssuer }> = async (app, { issuer }) => {
  app.post(
    '/dev/token',
    { config: { access: { public: true } }, schema: { hide: true, body: DevTokenBody } },
    async (request) => issuer.mint(request.body),
  );
  app.get('/dev/jwks.json', { config: { access: { public: true } }, schema: { hide: true } }, async () => issuer.jwks);
};
