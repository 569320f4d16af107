// Shapes of API keys: what owners see (never the secret), what create takes and answers (the
// secret, once), and the verify question and answer.
import Type, { type Static } from 'typebox';
import { VERIFY_CODES, type VerifyAnswer } from '../../domain/key-verdict.js';
import { ProductCode } from './entitlement.js';
import { Nullable, RefTo, Text, Timestamp, Uuid } from './parts.js';
import { TenantStatusSchema } from './tenant.js';

const Scope = Type.String({ pattern: '^[a-z0-9][a-z0-9:._-]{0,63}$', description: 'e.g. documents:read' });

export const ApiKeySchema = Type.Object(
  {
    id: Uuid(),
    tenant_id: Uuid(),
    name: Type.String(),
    prefix: Type.String({ description: '"bp_" and the first 4 characters, to tell keys apart' }),
    last4: Type.String({ description: 'the last 4 characters' }),
    scopes: Type.Array(Type.String()),
    products: Type.Array(Type.String(), { description: 'products the key is limited to; empty: all the tenant may use' }),
    created_at: Timestamp(),
    expires_at: Nullable(Timestamp()),
    last_used_at: Nullable(Timestamp({ description: 'updated at most once a minute' })),
    revoked_at: Nullable(Timestamp()),
  },
  { $id: 'ApiKey', title: 'ApiKey', additionalProperties: false },
);
export type ApiKey = Static<typeof ApiKeySchema>;

export const CreatedApiKeySchema = Type.Object(
  {
    ...ApiKeySchema.properties,
    key: Type.Optional(
      Type.String({
        description:
          'the key itself: shown here once, never stored, never shown again; absent from a replay (Idempotent-Replayed: true)',
      }),
    ),
  },
  { $id: 'CreatedApiKey', title: 'CreatedApiKey', additionalProperties: false, description: 'The new key, with its secret' },
);

export const ApiKeyListSchema = Type.Object(
  { items: Type.Array(RefTo(ApiKeySchema)) },
  { $id: 'ApiKeyList', title: 'ApiKeyList', additionalProperties: false, description: 'The keys' },
);

export const CreateApiKeyBody = Type.Object(
  {
    tenant_id: Uuid(),
    name: Text(100),
    scopes: Type.Optional(Type.Array(Scope, { maxItems: 50, uniqueItems: true })),
    products: Type.Optional(Type.Array(ProductCode, { maxItems: 50, uniqueItems: true })),
    expires_at: Type.Optional(Timestamp({ description: 'must be in the future' })),
  },
  { additionalProperties: false },
);

export const UpdateApiKeyBody = Type.Object(
  {
    name: Type.Optional(Text(100)),
    scopes: Type.Optional(
      Type.Array(Scope, { maxItems: 50, uniqueItems: true, description: 'some of the scopes the key has; never others' }),
    ),
    products: Type.Optional(
      Type.Array(ProductCode, {
        maxItems: 50,
        uniqueItems: true,
        description:
          'some of the products the key is limited to; for a key without a limit, products the tenant may use now. Never empty for a limited key',
      }),
    ),
  },
  { additionalProperties: false, minProperties: 1, description: 'What to change: a new name, fewer scopes, fewer products' },
);

export const ApiKeyListQuery = Type.Object(
  { tenant_id: Uuid(), include_revoked: Type.Optional(Type.Boolean({ default: false })) },
  { additionalProperties: false },
);

export const ApiKeyParams = Type.Object({ id: Uuid() }, { additionalProperties: false });

// A week is the longest overlap a deployment needs to roll a new key out everywhere (Stripe's too).
export const MAX_GRACE_SECONDS = 7 * 24 * 60 * 60;

export const RotateBody = Type.Object(
  {
    grace_seconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: MAX_GRACE_SECONDS, description: 'how long the old key keeps working; default 0' }),
    ),
  },
  { additionalProperties: false },
);

export const VerifyBody = Type.Object(
  {
    // Bounded but not patterned: a malformed key is an answer (MALFORMED), not a 400.
    key: Type.String({ maxLength: 200 }),
    product: Type.Optional(ProductCode),
    scope: Type.Optional(Scope),
  },
  { additionalProperties: false },
);

export const VerifyAnswerSchema = Type.Object(
  {
    valid: Type.Boolean(),
    code: Type.Enum(VERIFY_CODES),
    key_id: Type.Optional(Uuid()),
    tenant_id: Type.Optional(Uuid()),
    slug: Type.Optional(Type.String()),
    tenant_status: Type.Optional(RefTo(TenantStatusSchema)),
    plan: Type.Optional(Nullable(Type.String())),
    scopes: Type.Optional(Type.Array(Type.String())),
    products: Type.Optional(Type.Array(Type.String())),
    expires_at: Type.Optional(Nullable(Timestamp())),
    valid_until: Type.Optional(
      Nullable(
        Timestamp({
          description:
            'the earliest instant the verdict could change by time alone (expiry, the tenant\'s or the product\'s trial end); null: never. A caller that keeps the answer asks again from then on',
        }),
      ),
    ),
  },
  { $id: 'KeyVerdict', title: 'KeyVerdict', additionalProperties: false, description: 'Always 200; `valid` and `code` tell the verdict' },
);

// The answer's shape is domain/key-verdict.ts's VerifyAnswer; this fails to compile if they part.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const answerAgrees: Same<Static<typeof VerifyAnswerSchema>, VerifyAnswer> = true;
void answerAgrees;
