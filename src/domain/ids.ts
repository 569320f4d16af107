// Identifiers. Every id this service hands out is a UUID, written in lowercase; one may arrive in
// either case. Ajv's "uuid" format also takes a urn:uuid: prefix, which PostgreSQL refuses; this
// pattern does not.

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

const UUID = new RegExp(UUID_PATTERN);

export const isUuid = (text: string): boolean => UUID.test(text);
