// The product catalog: what the platform sells, whether a tenant can ask sales for it and
// whether it offers a self-serve trial. The data lives in catalog/products.json.

export interface Product {
  code: string;
  name: string;
  description: string;
  /** Tenants may ask sales for it (POST /v1/catalog/request). */
  requestable: boolean;
  /** Length of the self-serve trial, or null when none is offered. */
  trial_days: number | null;
}

export interface Catalog {
  version: number;
  products: Product[];
}

/** Product codes appear in URLs, audit events and token claims: short, lowercase, stable. */
export const PRODUCT_CODE_PATTERN = '^[a-z0-9][a-z0-9_-]{0,63}$';

export function findProduct(catalog: Catalog, code: string): Product | undefined {
  return catalog.products.find((product) => product.code === code);
}
