// The slug is the tenant's name in URLs (the portal resolves tenant.example.com/acme by it) and
// in Keycloak (organization alias), so it must be safe in both. The same rule is a CHECK
// constraint in migrations/0001_init.up.sql; a migration test keeps the two in agreement.

/** 3 to 40 characters: lowercase letters, digits and dashes, no dash at either end. */
export const SLUG_PATTERN = '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$';
