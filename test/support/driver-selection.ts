// Which drivers the run covers: TEST_DRIVERS, `pglite,pg` by default (`pglite` for make test-short,
// which needs no PostgreSQL). Read here alone, by the two-driver harness and the PostgreSQL helpers.
export type DriverName = 'pglite' | 'pg';

export const DRIVERS: DriverName[] = (process.env.TEST_DRIVERS ?? 'pglite,pg')
  .split(',')
  .map((name) => name.trim())
  .filter((name): name is DriverName => name === 'pglite' || name === 'pg');

export function pgDriverSelected(): boolean {
  return DRIVERS.includes('pg');
}
