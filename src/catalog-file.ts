// Loads the catalog file at boot: catalog/products.json from the repository (shipped in the
// build), or the file CATALOG_PATH names. A file that breaks the schema, or repeats a product
// code, stops the service with one line naming the file and the offending entry.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import Type from 'typebox';
import Value from 'typebox/value';
import { PRODUCT_CODE_PATTERN, type Catalog } from './domain/products.js';

export const DEFAULT_CATALOG_PATH = fileURLToPath(new URL('../catalog/products.json', import.meta.url));

const CatalogFile = Type.Object(
  {
    version: Type.Integer({ minimum: 1 }),
    products: Type.Array(
      Type.Object(
        {
          code: Type.String({ pattern: PRODUCT_CODE_PATTERN }),
          name: Type.String({ minLength: 1, maxLength: 200 }),
          description: Type.String({ maxLength: 2000 }),
          requestable: Type.Boolean(),
          // A year is the longest evaluation sales would offer; beyond it is a typo.
          trial_days: Type.Union([Type.Integer({ minimum: 1, maximum: 365 }), Type.Null()]),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 500 },
    ),
  },
  { additionalProperties: false },
);

export class CatalogError extends Error {
  constructor(file: string, problem: string) {
    super(`invalid catalog ${file}: ${problem}`);
    this.name = 'CatalogError';
  }
}

export async function loadCatalog(file: string = DEFAULT_CATALOG_PATH): Promise<Catalog> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new CatalogError(file, error instanceof SyntaxError ? `not JSON (${error.message})` : 'cannot be read');
  }
  const [first] = Value.Errors(CatalogFile, data);
  if (first) throw new CatalogError(file, `${first.instancePath || '/'} ${first.message}`);
  const catalog = data as Catalog;
  const seen = new Set<string>();
  for (const [index, product] of catalog.products.entries()) {
    if (seen.has(product.code)) throw new CatalogError(file, `/products/${index}/code repeats "${product.code}"`);
    seen.add(product.code);
  }
  return catalog;
}
