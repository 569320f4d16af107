DROP TABLE IF EXISTS tenant_admins;
