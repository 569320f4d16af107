import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CatalogError, loadCatalog } from '../src/catalog-file.js';

describe('loadCatalog', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'catalog-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const write = async (name: string, content: string) => {
    const file = path.join(dir, name);
    await writeFile(file, content);
    return file;
  };
  const product = (overrides: Record<string, unknown> = {}) => ({
    code: 'risk',
    name: 'Risk Register',
    description: 'Risks.',
    requestable: true,
    trial_days: 14,
    ...overrides,
  });

  it('loads the catalog shipped in the repository: unique codes, sane trials', async () => {
    const catalog = await loadCatalog();
    expect(catalog.version).toBeGreaterThanOrEqual(1);
    const codes = catalog.products.map((p) => p.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect(catalog.products.some((p) => p.trial_days === 14)).toBe(true);
    expect(catalog.products.some((p) => p.trial_days === null)).toBe(true);
    expect(catalog.products.some((p) => !p.requestable)).toBe(true);
  });

  it('loads a valid file from another path (CATALOG_PATH)', async () => {
    const file = await write('ok.json', JSON.stringify({ version: 2, products: [product()] }));
    expect(await loadCatalog(file)).toEqual({ version: 2, products: [product()] });
  });

  it.each([
    ['not JSON', '{"version": 1,', /not JSON/],
    ['no products', JSON.stringify({ version: 1, products: [] }), /\/products/],
    ['a bad code', JSON.stringify({ version: 1, products: [product({ code: 'Risk Register' })] }), /\/products\/0\/code/],
    ['a zero-day trial', JSON.stringify({ version: 1, products: [product({ trial_days: 0 })] }), /\/products\/0\/trial_days/],
    ['an unknown field', JSON.stringify({ version: 1, products: [product({ price: 10 })] }), /\/products\/0/],
    ['a missing field', JSON.stringify({ version: 1, products: [{ code: 'x' }] }), /\/products\/0/],
    ['a repeated code', JSON.stringify({ version: 1, products: [product(), product()] }), /\/products\/1\/code repeats "risk"/],
  ])('refuses a file with %s, naming the file and the entry', async (_case, content, problem) => {
    const file = await write(`bad-${Math.random()}.json`, content);
    const error = await loadCatalog(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CatalogError);
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toMatch(problem);
    expect((error as Error).message).not.toContain('\n');
  });

  it('refuses a file that does not exist', async () => {
    await expect(loadCatalog(path.join(dir, 'missing.json'))).rejects.toThrow(/cannot be read/);
  });
});
