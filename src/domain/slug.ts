// The slug is the tenant's name in URLs (the portal resolves tenant.example.com/acme by it) and
// in Keycloak (organization alias), so it must be safe in both. The same rule is a CHECK
// constraint in migrations/0001_init.up.sql; a migration test keeps the two in agreement.

export const SLUG_MIN_LENGTH = 3;
export const SLUG_MAX_LENGTH = 40;

/** Lowercase letters, digits and dashes, no dash at either end, SLUG_MIN to SLUG_MAX characters. */
export const SLUG_PATTERN = `^[a-z0-9][a-z0-9-]{${SLUG_MIN_LENGTH - 2},${SLUG_MAX_LENGTH - 2}}[a-z0-9]$`;
