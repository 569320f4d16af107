// Tampering with the audit log as someone who can switch its append-only triggers off (the
// database owner or a superuser: session_replication_role = replica skips ordinary triggers).
// The hash chain must still catch what such a writer does; tests of a plain writer use
// db.query and expect the triggers to refuse.
import type { Database } from '../../src/store/database.js';

export async function tamper(db: Database, sql: string, params: unknown[] = []): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('SET LOCAL session_replication_role = replica');
    await tx.query(sql, params);
  });
}
