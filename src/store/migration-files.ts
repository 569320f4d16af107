// Reads the migrations shipped with the code. The folder sits two levels above this module both
// in the source tree (src/store -> migrations) and in the build (dist/src/store -> dist/migrations),
// so the build carries its own copy and never reads the checkout.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface Migration {
  version: number;
  name: string;
  up: string;
  down: string;
}

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$/;

/** Every migration in dir, ordered by version; a gap, a duplicate or a missing half throws. */
export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const halves = new Map<number, { name: string; up?: string; down?: string }>();
  for (const file of (await readdir(dir)).sort()) {
    const match = FILE_NAME.exec(file);
    if (!match) {
      if (file.endsWith('.sql')) throw new Error(`migration file ${file} is not named NNNN_name.up|down.sql`);
      continue;
    }
    const [, digits, name, direction] = match as unknown as [string, string, string, 'up' | 'down'];
    const version = Number(digits);
    const entry = halves.get(version) ?? { name };
    if (entry.name !== name) throw new Error(`migration ${digits} has two names: ${entry.name} and ${name}`);
    entry[direction] = await readFile(path.join(dir, file), 'utf8');
    halves.set(version, entry);
  }

  const migrations = [...halves.entries()]
    .sort(([a], [b]) => a - b)
    .map(([version, { name, up, down }]) => {
      if (up === undefined || down === undefined) {
        throw new Error(`migration ${version} (${name}) needs both an .up.sql and a .down.sql file`);
      }
      return { version, name, up, down };
    });
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(`migration versions must run 1, 2, 3...; found ${migration.version} at position ${index + 1}`);
    }
  });
  return migrations;
}

/** Writes the next empty pair of files and returns their paths. */
export async function createMigrationFiles(name: string, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error('NAME must be lowercase letters, digits and underscores');
  const existing = await loadMigrations(dir);
  const prefix = String(existing.length + 1).padStart(4, '0');
  const files = (['up', 'down'] as const).map((direction) => path.join(dir, `${prefix}_${name}.${direction}.sql`));
  for (const [index, file] of files.entries()) {
    const hint = index === 0 ? 'the change' : 'what undoes the change';
    await writeFile(file, `-- ${prefix}_${name}: ${hint}.\n`, { flag: 'wx' });
  }
  return files;
}
