DROP TABLE IF EXISTS keycloak_sync;
