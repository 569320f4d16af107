// Shapes of the probes' answers: liveness, and readiness with what it checked.
import Type from 'typebox';
import { KEYCLOAK_HEALTH } from '../../keycloak/adapter.js';

export const ISSUER_HEALTH = ['up', 'down', 'mismatch', 'dev'] as const;
export type IssuerHealth = (typeof ISSUER_HEALTH)[number];

export const LivenessSchema = Type.Object(
  { status: Type.Literal('ok') },
  { $id: 'Liveness', title: 'Liveness', additionalProperties: false, description: 'The process is alive' },
);

export const ReadinessSchema = Type.Object(
  {
    status: Type.Literal('ready'),
    checks: Type.Object(
      {
        database: Type.Literal('up'),
        keycloak: Type.Enum(KEYCLOAK_HEALTH, {
          description: 'down degrades provisioning only; mock: the dev stand-in; disabled: provisioning is turned off (KEYCLOAK_PROVISIONING=off)',
        }),
        issuer: Type.Optional(
          Type.Enum(ISSUER_HEALTH, {
            description:
              'The token issuer (KEYCLOAK_ISSUER): up, its discovery document and keys were fetched; down, they could not be ' +
              '(details.issuer says why); mismatch, its discovery document names another issuer than the one configured ' +
              '(details.issuer names both); dev, the embedded development issuer. Neither down nor mismatch makes the replica ' +
              'unready; meanwhile requests with a token not verified before answer 503',
          }),
        ),
      },
      { additionalProperties: false },
    ),
    details: Type.Optional(
      Type.Object(
        { issuer: Type.Optional(Type.String({ description: 'Why the issuer is down or mismatched' })) },
        { additionalProperties: false, description: 'What a check that is not up has to say, by check' },
      ),
    ),
  },
  { $id: 'Readiness', title: 'Readiness', additionalProperties: false, description: 'The database answered' },
);
