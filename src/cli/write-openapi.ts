// Writes openapi.yaml from the routes' schemas (`make openapi`). The app is built around an
// embedded database that is never queried: generating the document only walks the routes.
import { writeFile } from 'node:fs/promises';
import { pino } from 'pino';
import { buildApp } from '../app.js';
import { authenticationFor } from '../auth/setup.js';
import { loadCatalog } from '../catalog-file.js';
import { loadConfig } from '../config.js';
import { startCaching } from '../caching/setup.js';
import { startKeyVerification } from '../keys/setup.js';
import { keycloakAdapterFor } from '../keycloak/setup.js';
import { openApiYaml } from '../http/openapi.js';
import { openPglite } from '../store/pglite-driver.js';
import type { FeedSignal } from '../events/feed-signal.js';

const target = new URL('../../openapi.yaml', import.meta.url);
const db = await openPglite({ dataDir: null });
const auth = await authenticationFor(loadConfig({}));
const caching = await startCaching(db);
const keys = startKeyVerification(db, caching.keyCache, { pepper: null, clock: () => new Date(), onError: () => {} });
// The database has no tables; nothing is ever read, so nothing ever arrives.
const feed: FeedSignal = { head: 0, wait: async () => false, stop: async () => {} };
const keycloak = { adapter: keycloakAdapterFor(loadConfig({})), budgetMs: 1000 };
const app = await buildApp({ caching, auth, catalog: await loadCatalog(), keys, keycloak, feed, config: { appEnv: 'dev', bodyLimitBytes: 1024 }, logger: pino({ level: 'silent' }) });
await app.ready();
await writeFile(target, openApiYaml(app));
await app.close();
await keys.stop();
await feed.stop();
await caching.stop();
await db.close();
console.log(`wrote ${target.pathname}`);
