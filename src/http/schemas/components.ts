// Schemas registered once by $id and referenced from routes: each appears once in openapi.yaml
// (components/schemas) and is known to both the validator and the serializer.
import { ApiKeySchema } from './api-key.js';
import { AuditEventSchema } from './audit.js';
import { ChangeEventSchema, EventPageSchema } from './event.js';
import { DeliveryPageSchema, DeliverySchema, WebhookSchema } from './webhook.js';
import { EntitlementSchema, ProductRequestSchema } from './entitlement.js';
import { ProblemSchema } from './problem.js';
import { TenantPageSchema, TenantSchema, TransitionsSchema } from './tenant.js';

export const SHARED_SCHEMAS = [ProblemSchema, TenantSchema, TenantPageSchema, AuditEventSchema, EntitlementSchema, ProductRequestSchema, ApiKeySchema, TransitionsSchema, ChangeEventSchema, EventPageSchema, WebhookSchema, DeliverySchema, DeliveryPageSchema];
