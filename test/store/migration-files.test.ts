import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createMigrationFiles, loadMigrations, MIGRATIONS_DIR } from '../../src/store/migration-files.js';

const tempDirs: string[] = [];

/** A fresh temporary directory holding exactly the given files. */
async function dirWith(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tr-migrations-'));
  tempDirs.push(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  return dir;
}

afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

const INIT_PAIR = {
  '0001_init.up.sql': 'CREATE TABLE t (id integer);\n',
  '0001_init.down.sql': 'DROP TABLE t;\n',
};

describe('loadMigrations', () => {
  it('reads the shipped migrations: version 1 is init, with both halves non-empty', async () => {
    const migrations = await loadMigrations();
    expect(migrations.map((migration) => migration.version)).toEqual(migrations.map((_, index) => index + 1));
    const [init] = migrations;
    expect(init).toMatchObject({ version: 1, name: 'init' });
    expect(init!.up.trim()).not.toBe('');
    expect(init!.down.trim()).not.toBe('');
    expect(init!.up).toBe(await readFile(path.join(MIGRATIONS_DIR, '0001_init.up.sql'), 'utf8'));
    expect(init!.down).toBe(await readFile(path.join(MIGRATIONS_DIR, '0001_init.down.sql'), 'utf8'));
  });

  it('orders a well-formed directory by version and ignores files that are not .sql', async () => {
    const dir = await dirWith({
      ...INIT_PAIR,
      '0002_add_team.down.sql': 'DROP TABLE team;',
      '0002_add_team.up.sql': 'CREATE TABLE team ();',
      'README.md': 'notes',
    });
    expect(await loadMigrations(dir)).toEqual([
      { version: 1, name: 'init', up: INIT_PAIR['0001_init.up.sql'], down: INIT_PAIR['0001_init.down.sql'] },
      { version: 2, name: 'add_team', up: 'CREATE TABLE team ();', down: 'DROP TABLE team;' },
    ]);
  });

  it('throws for a migration without its .down.sql', async () => {
    const dir = await dirWith({ '0001_init.up.sql': 'SELECT 1;' });
    await expect(loadMigrations(dir)).rejects.toThrow(/migration 1 \(init\) needs both an \.up\.sql and a \.down\.sql/);
  });

  it('throws for a gap in the versions', async () => {
    const dir = await dirWith({
      ...INIT_PAIR,
      '0003_later.up.sql': 'SELECT 1;',
      '0003_later.down.sql': 'SELECT 1;',
    });
    await expect(loadMigrations(dir)).rejects.toThrow(/found 3 at position 2/);
  });

  it.each(['2_oops.sql', '0002_Add-Team.up.sql', '0002_add_team.sql'])('throws for the badly named file %s', async (bad) => {
    const dir = await dirWith({ ...INIT_PAIR, [bad]: 'SELECT 1;' });
    await expect(loadMigrations(dir)).rejects.toThrow(`migration file ${bad} is not named NNNN_name.up|down.sql`);
  });

  it('throws when the two halves of a version carry different names', async () => {
    const dir = await dirWith({ '0001_one.up.sql': 'SELECT 1;', '0001_two.down.sql': 'SELECT 1;' });
    await expect(loadMigrations(dir)).rejects.toThrow(/has two names/);
  });
});

describe('createMigrationFiles', () => {
  it('writes the next numbered pair next to the existing ones', async () => {
    const dir = await dirWith(INIT_PAIR);
    const files = await createMigrationFiles('add_team', dir);
    expect(files).toEqual([path.join(dir, '0002_add_team.up.sql'), path.join(dir, '0002_add_team.down.sql')]);
    expect((await readdir(dir)).sort()).toEqual(
      ['0001_init.down.sql', '0001_init.up.sql', '0002_add_team.down.sql', '0002_add_team.up.sql'],
    );
    const loaded = await loadMigrations(dir);
    expect(loaded.map(({ version, name }) => ({ version, name }))).toEqual([
      { version: 1, name: 'init' },
      { version: 2, name: 'add_team' },
    ]);
    expect(loaded[1]!.up).toMatch(/^-- 0002_add_team: /);
    expect(loaded[1]!.down).toMatch(/^-- 0002_add_team: /);
  });

  it.each(['Bad-Name', '', 'add team', '../escape'])('refuses the invalid name %j and writes nothing', async (name) => {
    const dir = await dirWith(INIT_PAIR);
    await expect(createMigrationFiles(name, dir)).rejects.toThrow(/NAME must be lowercase letters, digits and underscores/);
    expect((await readdir(dir)).sort()).toEqual(['0001_init.down.sql', '0001_init.up.sql']);
  });

  it('refuses to write over a half-written migration and leaves it untouched', async () => {
    const handWritten = 'CREATE TABLE team (id integer); -- work in progress\n';
    const dir = await dirWith({ ...INIT_PAIR, '0002_add_team.up.sql': handWritten });
    await expect(createMigrationFiles('add_team', dir)).rejects.toThrow(/needs both/);
    expect(await readFile(path.join(dir, '0002_add_team.up.sql'), 'utf8')).toBe(handWritten);
    expect((await readdir(dir)).sort()).toEqual(['0001_init.down.sql', '0001_init.up.sql', '0002_add_team.up.sql']);
  });

  it('never rewrites an earlier pair when the same name is created twice', async () => {
    const dir = await dirWith(INIT_PAIR);
    const [firstUp] = await createMigrationFiles('add_team', dir);
    const edited = 'CREATE TABLE team (id integer);\n';
    await writeFile(firstUp!, edited);
    const second = await createMigrationFiles('add_team', dir);
    expect(second).toEqual([path.join(dir, '0003_add_team.up.sql'), path.join(dir, '0003_add_team.down.sql')]);
    expect(await readFile(firstUp!, 'utf8')).toBe(edited);
  });
});
