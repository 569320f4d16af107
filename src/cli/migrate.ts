// The migration command: `migrate up | down | down-all | version | create NAME`.
// It works on DATABASE_URL, or on the embedded database kept in EMBEDDED_DB_DIR, and reads those
// and APP_ENV alone: an init container has no API key pepper or issuer to give it. Every failure
// prints one line and exits non-zero, so an init container that fails keeps the rollout from
// starting the new version on an old schema.
import { ConfigError, loadMigrationConfig, type MigrationConfig } from '../config.js';
import type { Database } from '../store/database.js';
import { createMigrationFiles, loadMigrations, type Migration } from '../store/migration-files.js';
import { migrateDown, migrateUp, migrationStatus } from '../store/migrator.js';
import { openPg } from '../store/pg-driver.js';
import { openPglite } from '../store/pglite-driver.js';

const USAGE = 'usage: migrate up | down | down-all [--yes-destroy-all-data] | version | create NAME';
// down-all drops every table; outside dev it runs only when the command line says so in words.
const DESTROY_FLAG = '--yes-destroy-all-data';

const label = (migrations: Migration[], version: number) => {
  const migration = migrations.find((m) => m.version === version);
  return `${String(version).padStart(4, '0')}_${migration?.name ?? 'unknown'}`;
};

async function openTarget({ database }: MigrationConfig): Promise<Database> {
  if (database.kind === 'postgres') return openPg({ url: database.url, poolSize: 1 });
  // config.ts refuses an in-memory database here: migrating it would change nothing that lasts.
  return openPglite({ dataDir: database.dataDir });
}

/** Refuses down-all outside dev unless the flag is given, before anything is opened. */
function checkDestroyAllowed(config: MigrationConfig, argument: string | undefined): void {
  if (argument !== undefined && argument !== DESTROY_FLAG) throw new Error(USAGE);
  if (config.appEnv !== 'dev' && argument !== DESTROY_FLAG) {
    throw new Error(
      `down-all reverts every migration and destroys every table and row; with APP_ENV=${config.appEnv} it runs only as: migrate down-all ${DESTROY_FLAG}`,
    );
  }
}

async function run(command: string | undefined, argument: string | undefined): Promise<void> {
  if (command === 'create') {
    if (!argument) throw new Error('create needs a NAME, e.g. make migrate-create NAME=add_team_table');
    for (const file of await createMigrationFiles(argument)) console.log(`created ${file}`);
    return;
  }
  if (!['up', 'down', 'down-all', 'version'].includes(command ?? '')) throw new Error(USAGE);

  const config = loadMigrationConfig();
  if (command === 'down-all') checkDestroyAllowed(config, argument);
  const migrations = await loadMigrations();
  const db = await openTarget(config);
  try {
    if (command === 'up') {
      const applied = await migrateUp(db, migrations);
      console.log(applied.length === 0 ? 'no pending migrations' : applied.map((v) => `applied ${label(migrations, v)}`).join('\n'));
    } else if (command === 'down' || command === 'down-all') {
      const reverted = await migrateDown(db, migrations, command === 'down' ? 1 : Number.POSITIVE_INFINITY);
      console.log(reverted.length === 0 ? 'nothing to revert' : reverted.map((v) => `reverted ${label(migrations, v)}`).join('\n'));
    } else {
      const status = await migrationStatus(db, migrations);
      const current = status.current === 0 ? 'none applied' : label(migrations, status.current);
      console.log(`version ${status.current} (${current}); ${status.pending.length} pending`);
      for (const migration of status.pending) console.log(`pending ${label(migrations, migration.version)}`);
    }
  } finally {
    await db.close();
  }
}

run(process.argv[2], process.argv[3]).catch((error: unknown) => {
  const message = error instanceof ConfigError || error instanceof Error ? error.message : String(error);
  console.error(`migrate: ${message}`);
  process.exitCode = 1;
});
