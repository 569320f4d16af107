// POST /dev/token and GET /dev/jwks.json: the embedded development issuer's endpoints. They exist
// only when the service runs it (APP_ENV=dev without KEYCLOAK_ISSUER) and are left out of
// openapi.yaml, which describes the service as it runs anywhere else.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { DevIssuer } from '../auth/dev-issuer.js';
import { AppError } from '../problems.js';
import { Text, Uuid } from './schemas/parts.js';

const DevTokenBody = Type.Object(
  {
    sub: Type.Optional(Text(200)),
    name: Type.Optional(Text(200)),
    roles: Type.Array(Text(100), { maxItems: 20 }),
    tenant_id: Type.Optional(Uuid()),
  },
  { additionalProperties: false },
);

// ADDR=:8090 listens on every interface; a token that makes its bearer platform admin must not
// be handed to anyone else on the network, so these routes answer only this machine.
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

export const devTokenRoutes: FastifyPluginAsyncTypebox<{ issuer: DevIssuer }> = async (app, { issuer }) => {
  app.addHook('onRequest', async (request) => {
    if (!LOOPBACK.has(request.socket.remoteAddress ?? '')) {
      throw new AppError('forbidden', { detail: 'the development issuer answers only local requests' });
    }
  });

  app.post(
    '/dev/token',
    { config: { access: { public: true } }, schema: { hide: true, body: DevTokenBody } },
    async (request) => issuer.mint(request.body),
  );
  app.get('/dev/jwks.json', { config: { access: { public: true } }, schema: { hide: true } }, async () => issuer.jwks);
};
