// Schemas registered once by $id and referenced from routes: each appears once in openapi.yaml
// (components/schemas) and is known to both the validator and the serializer. Every answer body
// a route describes as JSON is one of these (test/openapi.test.ts checks it), so a generated
// client names each answer's type instead of reaching into an operation for it.
import { ApiKeyListSchema, ApiKeySchema, CreatedApiKeySchema, VerifyAnswerSchema } from './api-key.js';
import { AppendedEventSchema, AuditEventSchema, AuditPageSchema, ChainReportSchema } from './audit.js';
import { ChangeEventSchema, EventPageSchema } from './event.js';
import { LivenessSchema, ReadinessSchema } from './health.js';
import {
  CreatedWebhookSchema,
  DeliveryPageSchema,
  DeliverySchema,
  RotatedWebhookSchema,
  TestPingSchema,
  WebhookListSchema,
  WebhookSchema,
} from './webhook.js';
import {
  CatalogItemSchema,
  CatalogSchema,
  EntitlementListSchema,
  EntitlementSchema,
  ProductRequestPageSchema,
  ProductRequestSchema,
} from './entitlement.js';
import { ProblemSchema } from './problem.js';
import { CreatedTenantSchema, TenantClaimsSchema, TenantPageSchema, TenantSchema, TenantStatusSchema, TransitionsSchema } from './tenant.js';

// Referenced schemas come before those that reference them.
export const SHARED_SCHEMAS = [
  TenantStatusSchema,
  ProblemSchema,
  TenantSchema,
  TenantPageSchema,
  CreatedTenantSchema,
  TransitionsSchema,
  TenantClaimsSchema,
  AuditEventSchema,
  AuditPageSchema,
  AppendedEventSchema,
  ChainReportSchema,
  EntitlementSchema,
  EntitlementListSchema,
  CatalogItemSchema,
  CatalogSchema,
  ProductRequestSchema,
  ProductRequestPageSchema,
  ApiKeySchema,
  ApiKeyListSchema,
  CreatedApiKeySchema,
  VerifyAnswerSchema,
  ChangeEventSchema,
  EventPageSchema,
  WebhookSchema,
  WebhookListSchema,
  CreatedWebhookSchema,
  RotatedWebhookSchema,
  TestPingSchema,
  DeliverySchema,
  DeliveryPageSchema,
  LivenessSchema,
  ReadinessSchema,
];
