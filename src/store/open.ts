// Opens the database the configuration asks for and makes sure its schema is the one this
// build expects. The embedded database belongs to this process, so it is migrated and seeded
// here. A real PostgreSQL is shared by replicas and migrated by its own step (make migrate-up,
// an init container); the server only checks it and refuses to run against an old schema.
import type { Config } from '../config.js';
import type { Database } from './database.js';
import { loadMigrations } from './migration-files.js';
import { migrateUp, migrationStatus } from './migrator.js';
import { openPg } from './pg-driver.js';
import { openPglite } from './pglite-driver.js';
import { seedEmbedded } from './seed.js';

export class PendingMigrationsError extends Error {
  constructor(current: number, pending: string[]) {
    super(
      `database schema is at version ${current} and ${pending.length} migration(s) are pending ` +
        `(${pending.join(', ')}); run \`make migrate-up\` with the same DATABASE_URL first`,
    );
    this.name = 'PendingMigrationsError';
  }
}

export async function openDatabase(settings: Config['database'], pool: Config['pool'] = { size: 10, statementTimeoutMs: 0 }): Promise<Database> {
  const migrations = await loadMigrations();
  if (settings.kind === 'embedded') {
    const db = await openPglite({ dataDir: settings.dataDir });
    await migrateUp(db, migrations);
    await seedEmbedded(db);
    return db;
  }

  const db = openPg({ url: settings.url, poolSize: pool.size, statementTimeoutMs: pool.statementTimeoutMs });
  try {
    const status = await migrationStatus(db, migrations);
    if (status.pending.length > 0) {
      throw new PendingMigrationsError(
        status.current,
        status.pending.map((m) => `${String(m.version).padStart(4, '0')}_${m.name}`),
      );
    }
    return db;
  } catch (error) {
    await db.close();
    throw error;
  }
}
