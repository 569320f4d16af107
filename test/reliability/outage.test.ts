// Database outage: the service runs as a real process against a private PostgreSQL, under steady
// load on every kind of endpoint, while that PostgreSQL is stopped for a few seconds and started
// again. What must hold: every request is answered promptly, with 2xx or a 503 problem (never a
// 500, a hang or a dropped connection); /readyz says 503 while the database is away; the hot key
// keeps verifying from the cache; the service comes back by itself; and nothing acknowledged is
// lost or torn (every change has its audit event, every event its change, every chain verifies).
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { devToken, PROCESS_TEST_TIMEOUT_MS, runMigrate, startService, stopAll, type ServiceProcess } from '../process/spawn.js';
import { DRIVERS } from '../support/drivers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { recordFigures } from './figures.js';

// The timeline, in milliseconds of load: the database goes away after BEFORE_MS, stays away for
// OUTAGE_MS and the load goes on for AFTER_MS once it is back.
const BEFORE_MS = 1_500;
const OUTAGE_MS = 3_000;
const AFTER_MS = 3_000;
// Every answer, also a 503 while the database is away, comes within this.
const ANSWER_BOUND_MS = 6_000;
// A 503 because the database is away must be quick: the client should retry elsewhere, not wait.
const UNAVAILABLE_BOUND_MS = 1_000;
// The service must serve writes again this soon after PostgreSQL accepts connections.
const RECOVERY_BOUND_MS = 5_000;
// A request that has not been answered after this is recorded as a hang (status 0).
const CLIENT_TIMEOUT_MS = 10_000;

type Kind = 'create_tenant' | 'append_audit' | 'read_by_slug' | 'verify_key' | 'entitlements' | 'readyz' | 'setup';
const WRITES: Kind[] = ['create_tenant', 'append_audit'];

interface Answer {
  kind: Kind;
  /** performance.now() when the request was sent. */
  started: number;
  ms: number;
  /** 0: no HTTP answer at all (connection error or client timeout; `error` says which). */
  status: number;
  contentType: string;
  code?: string;
  error?: string;
  /** What a 2xx write acknowledged: the tenant's or the event's id. */
  id?: string;
  hash?: string;
  /** What the write asked for, to find it in the database whatever the answer was. */
  slug?: string;
  externalId?: string;
  /** verify: the verdict. */
  valid?: boolean;
}

interface Seeded {
  tenants: Array<{ id: string; slug: string }>;
  key: string;
}

const suffix = () => randomBytes(4).toString('hex');

let cluster: PgCluster | undefined;

afterAll(async () => {
  await stopAll();
  await cluster?.destroy();
});

async function call(
  service: ServiceProcess,
  kind: Kind,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  token: string | null,
  body?: unknown,
): Promise<Answer & { body: Record<string, unknown> | undefined }> {
  const started = performance.now();
  try {
    const response = await fetch(`${service.baseUrl}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
    const text = await response.text();
    const contentType = response.headers.get('content-type') ?? '';
    let parsed: Record<string, unknown> | undefined;
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    } catch {
      parsed = undefined;
    }
    return {
      kind,
      started,
      ms: performance.now() - started,
      status: response.status,
      contentType,
      ...(typeof parsed?.code === 'string' && response.status >= 400 ? { code: parsed.code } : {}),
      body: parsed,
    };
  } catch (error) {
    const e = error as Error & { cause?: { code?: string } };
    return {
      kind,
      started,
      ms: performance.now() - started,
      status: 0,
      contentType: '',
      error: e.name === 'TimeoutError' ? 'client timeout' : (e.cause?.code ?? e.message),
      body: undefined,
    };
  }
}

/** A call that must succeed with the given status (seeding and the checks after the load). */
async function must<T>(
  service: ServiceProcess,
  status: number,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  token: string,
  body?: unknown,
): Promise<T> {
  const answer = await call(service, 'setup', method, path, token, body);
  if (answer.status !== status) throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body as T;
}

async function seed(service: ServiceProcess, admin: string, registry: string): Promise<Seeded> {
  const tenants: Seeded['tenants'] = [];
  for (let i = 0; i < 3; i += 1) {
    const slug = `seed-${i}-${suffix()}`;
    const created = await must<{ tenant: { id: string; slug: string } }>(service, 201, 'POST', '/v1/tenants', admin, {
      slug,
      name: `Seed ${i}`,
    });
    tenants.push({ id: created.tenant.id, slug: created.tenant.slug });
  }
  const owner = tenants[0]!;
  await must(service, 200, 'PUT', `/v1/entitlements/${owner.id}/risk`, admin, {});
  const created = await must<{ key: string }>(service, 201, 'POST', '/v1/api-keys', admin, {
    tenant_id: owner.id,
    name: 'outage hot key',
    products: ['risk'],
  });
  // Warm the verify cache and the tenant cache: these are what the outage must not take away.
  const verdict = await must<{ valid: boolean }>(service, 200, 'POST', '/v1/internal/api-keys/verify', registry, {
    key: created.key,
    product: 'risk',
  });
  expect(verdict.valid).toBe(true);
  for (const tenant of tenants) await must(service, 200, 'GET', `/v1/tenants/by-slug/${tenant.slug}`, admin);
  return { tenants, key: created.key };
}

// PostgreSQL only (a private server of its own): skipped under TEST_DRIVERS=pglite (make test-short).
describe.runIf(DRIVERS.includes('pg'))('database outage [pg]', () => {
  it(
    'answers 2xx or a quick 503 while PostgreSQL is away, verifies keys from cache, recovers alone and loses nothing acknowledged',
    async () => {
      cluster = await startPgCluster();
      const migrated = await runMigrate(['up'], { DATABASE_URL: cluster.url });
      expect(migrated.code, migrated.stderr).toBe(0);

      const service = await startService({
        APP_ENV: 'dev',
        DATABASE_URL: cluster.url,
        // The tokens below come from the service's development issuer, on this throwaway cluster.
        DEV_ISSUER_WITH_DATABASE: 'true',
        RATE_LIMIT_PER_MINUTE: '999999999',
        RATE_LIMIT_INTERNAL_PER_MINUTE: '999999999',
        LOG_LEVEL: 'warn',
      });
      const admin = await devToken(service.baseUrl, ['platform_admin']);
      const registry = await devToken(service.baseUrl, ['registry_service']);
      const seeded = await seed(service, admin, registry);

      // --- Steady load on every kind of endpoint, each answer recorded. ---
      const answers: Answer[] = [];
      let loading = true;
      const loop = async (work: (i: number) => Promise<Answer>, pauseMs: number) => {
        for (let i = 0; loading; i += 1) {
          const { body: _body, ...answer } = (await work(i)) as Answer & { body?: unknown };
          answers.push(answer);
          await sleep(pauseMs);
        }
      };
      const createTenant = (loopId: number) => async (i: number) => {
        const slug = `out-${loopId}-${i}-${suffix()}`;
        const answer = await call(service, 'create_tenant', 'POST', '/v1/tenants', admin, { slug, name: `Outage ${slug}` });
        const tenant = answer.body?.tenant as { id?: string } | undefined;
        return { ...answer, slug, ...(answer.status === 201 && tenant?.id ? { id: tenant.id } : {}) };
      };
      const appendAudit = (loopId: number) => async (i: number) => {
        const externalId = `outage-${loopId}-${i}-${suffix()}`;
        const tenant = seeded.tenants[i % seeded.tenants.length]!;
        const answer = await call(service, 'append_audit', 'POST', '/v1/audit', registry, {
          action: 'outage.probe',
          crud: 'c',
          tenant_id: tenant.id,
          actor: { id: 'outage-test', name: 'outage test' },
          external_id: externalId,
        });
        const ok = answer.status === 201 && typeof answer.body?.id === 'string';
        return { ...answer, externalId, ...(ok ? { id: answer.body!.id as string, hash: answer.body!.hash as string } : {}) };
      };
      const readBySlug = async (i: number) =>
        call(service, 'read_by_slug', 'GET', `/v1/tenants/by-slug/${seeded.tenants[i % seeded.tenants.length]!.slug}`, admin);
      const verifyKey = async () => {
        const answer = await call(service, 'verify_key', 'POST', '/v1/internal/api-keys/verify', registry, {
          key: seeded.key,
          product: 'risk',
        });
        return { ...answer, ...(answer.status === 200 ? { valid: answer.body?.valid === true } : {}) };
      };
      const entitlements = async (i: number) =>
        call(service, 'entitlements', 'GET', `/v1/entitlements?tenant_id=${seeded.tenants[i % seeded.tenants.length]!.id}`, admin);
      const readyz = async () => call(service, 'readyz', 'GET', '/readyz', null);

      const loadStarted = performance.now();
      const loops = [
        loop(createTenant(1), 10),
        loop(createTenant(2), 10),
        loop(appendAudit(1), 5),
        loop(appendAudit(2), 5),
        loop(readBySlug, 5),
        loop(verifyKey, 2),
        loop(verifyKey, 2),
        loop(entitlements, 5),
        loop(readyz, 50),
      ];

      await sleep(BEFORE_MS);
      const stopCalled = performance.now();
      await cluster.stop('fast');
      const down = performance.now();
      await sleep(OUTAGE_MS);
      const startCalled = performance.now();
      await cluster.start();
      const up = performance.now();
      await sleep(AFTER_MS);
      loading = false;
      await Promise.all(loops);
      const loadEnded = performance.now();

      // --- The process survived without a crash or an unhandled failure. ---
      expect(service.isRunning(), `the service ended:\n${service.stderr().slice(-3000)}`).toBe(true);
      const output = service.stdout() + service.stderr();
      expect(output).not.toMatch(/unhandledRejection|uncaughtException|unhandled rejection|uncaught exception/i);

      // --- Every answer: prompt, and 2xx or a 503 problem with a code. ---
      const during = (a: Answer) => a.started >= down && a.started + a.ms <= startCalled;
      const strays = answers.filter(
        (a) =>
          a.status === 0 ||
          a.ms >= ANSWER_BOUND_MS ||
          !(
            (a.status >= 200 && a.status < 300) ||
            (a.status === 503 && a.contentType.startsWith('application/problem+json') && typeof a.code === 'string')
          ),
      );
      expect(strays.slice(0, 10), `${strays.length} answers out of bounds`).toEqual([]);
      const slow503 = answers.filter((a) => a.status === 503 && during(a) && a.ms >= UNAVAILABLE_BOUND_MS);
      expect(slow503.slice(0, 10), `${slow503.length} slow 503s during the outage`).toEqual([]);

      // --- During the outage: not ready, and the hot key still verifies (from the cache). ---
      const outage = answers.filter(during);
      const readyDuring = outage.filter((a) => a.kind === 'readyz');
      expect(readyDuring.length).toBeGreaterThan(10);
      expect(readyDuring.filter((a) => a.status !== 503)).toEqual([]);
      const verifies = answers.filter((a) => a.kind === 'verify_key');
      expect(verifies.filter((a) => a.status !== 200 || a.valid !== true).slice(0, 10)).toEqual([]);
      const verifiesDuring = outage.filter((a) => a.kind === 'verify_key');
      expect(verifiesDuring.length).toBeGreaterThan(50);
      // The database really was away: writes during the outage were refused, not queued.
      const writesDuring = outage.filter((a) => WRITES.includes(a.kind));
      expect(writesDuring.length).toBeGreaterThan(0);
      expect(writesDuring.filter((a) => a.status !== 503)).toEqual([]);

      // --- Recovery without a restart: ready again and writing again within seconds. ---
      const after = answers.filter((a) => a.started >= up);
      const firstOk = (kinds: Kind[]) => after.find((a) => kinds.includes(a.kind) && a.status >= 200 && a.status < 300);
      const readyAgain = firstOk(['readyz']);
      const writingAgain = WRITES.map((kind) => firstOk([kind]));
      expect(readyAgain, 'ready again after the restart').toBeDefined();
      expect(writingAgain.every(Boolean), 'every kind of write succeeds again after the restart').toBe(true);
      const recoveryMs = Math.max(readyAgain!.started, ...writingAgain.map((a) => a!.started)) - up;
      expect(recoveryMs).toBeLessThan(RECOVERY_BOUND_MS);
      // Once recovered, it stays recovered: nothing after the first success fails again.
      const recoveredAt = Math.max(readyAgain!.started + readyAgain!.ms, ...writingAgain.map((a) => a!.started + a!.ms));
      const failedAfterRecovery = answers.filter((a) => a.started > recoveredAt && a.status !== 200 && a.status !== 201);
      expect(failedAfterRecovery.slice(0, 10)).toEqual([]);

      // --- Nothing acknowledged is lost; every change has its event and every event its change. ---
      const client = new pg.Client({ connectionString: cluster.url });
      await client.connect();
      let ackedTenants: Answer[];
      let ackedEvents: Answer[];
      let committedUnacknowledged: number;
      let missing: number;
      let tenantIds: string[];
      try {
        ackedTenants = answers.filter((a) => a.kind === 'create_tenant' && a.id !== undefined);
        const foundTenants = await client.query<{ id: string; slug: string }>('SELECT id, slug FROM tenants WHERE id = ANY($1::uuid[])', [
          ackedTenants.map((a) => a.id),
        ]);
        const slugOf = new Map(foundTenants.rows.map((row) => [row.id, row.slug]));
        const lostTenants = ackedTenants.filter((a) => slugOf.get(a.id!) !== a.slug);
        expect(lostTenants, 'tenants acknowledged 201 but not in the database').toEqual([]);

        ackedEvents = answers.filter((a) => a.kind === 'append_audit' && a.id !== undefined);
        const foundEvents = await client.query<{ id: string; hash: string; external_id: string }>(
          'SELECT id, hash, external_id FROM audit_log WHERE id = ANY($1::uuid[])',
          [ackedEvents.map((a) => a.id)],
        );
        const eventById = new Map(foundEvents.rows.map((row) => [row.id, row]));
        const lostEvents = ackedEvents.filter(
          (a) => eventById.get(a.id!)?.hash !== a.hash || eventById.get(a.id!)?.external_id !== a.externalId,
        );
        expect(lostEvents, 'events acknowledged 201 but not in the database as acknowledged').toEqual([]);
        missing = lostTenants.length + lostEvents.length;

        // Writes answered 503 may still have committed (the answer was lost, not the write): counted, not failed.
        const unacked = answers.filter((a) => WRITES.includes(a.kind) && a.id === undefined);
        const committedTenants = await client.query('SELECT 1 FROM tenants WHERE slug = ANY($1::text[])', [
          unacked.filter((a) => a.slug).map((a) => a.slug),
        ]);
        const committedEvents = await client.query('SELECT 1 FROM audit_log WHERE external_id = ANY($1::text[])', [
          unacked.filter((a) => a.externalId).map((a) => a.externalId),
        ]);
        committedUnacknowledged = committedTenants.rowCount! + committedEvents.rowCount!;

        // Each change pairs with exactly one event written in its transaction, both ways.
        const pairs = [
          {
            what: 'tenant.created',
            changes: 'SELECT id::text AS id FROM tenants',
          },
          { what: 'api_key.created', changes: 'SELECT id::text AS id FROM api_keys' },
          { what: 'entitlement.granted', changes: "SELECT tenant_id::text || '/' || product AS id FROM tenant_products WHERE status = 'active'" },
        ];
        for (const { what, changes } of pairs) {
          const events = await client.query<{ id: string }>(
            what === 'entitlement.granted'
              ? "SELECT chain_key || '/' || product AS id FROM audit_log WHERE action = $1"
              : 'SELECT target_id AS id FROM audit_log WHERE action = $1',
            [what],
          );
          const rows = await client.query<{ id: string }>(changes);
          const eventIds = events.rows.map((row) => row.id).sort();
          const changeIds = rows.rows.map((row) => row.id).sort();
          expect(eventIds, `${what}: one event per change and one change per event`).toEqual(changeIds);
        }
        tenantIds = (await client.query<{ id: string }>('SELECT id FROM tenants')).rows.map((row) => row.id);
        // Every event of the load went to one of the seeded tenants' chains.
        const loadEvents = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_log WHERE action = 'outage.probe'");
        expect(loadEvents.rows[0]!.n).toBeGreaterThanOrEqual(ackedEvents.length);
      } finally {
        await client.end();
      }

      // --- Every chain the load touched still verifies end to end. ---
      const broken: Array<{ tenant: string; report: unknown }> = [];
      for (const id of tenantIds) {
        const report = await must<{ ok: boolean }>(service, 200, 'GET', `/v1/audit/verify?tenant_id=${id}`, admin);
        if (!report.ok) broken.push({ tenant: id, report });
      }
      expect(broken).toEqual([]);

      const count = (list: Answer[], test: (a: Answer) => boolean) => list.filter(test).length;
      const duringMs = startCalled - down;
      const worst503 = Math.max(0, ...outage.filter((a) => a.status === 503).map((a) => a.ms));
      recordFigures(
        'database outage [pg]',
        `PostgreSQL stopped (pg_ctl stop -m fast) under steady load on 9 concurrent loops (tenant creates, audit appends, reads by slug, hot-key verifies, entitlement reads, /readyz) for ${(duringMs / 1000).toFixed(1)} s, then started again`,
        [
          { label: 'requests sent in all', value: answers.length },
          { label: 'requests sent while the database was down', value: outage.length },
          { label: 'answered 503 problem+json during the outage', value: count(outage, (a) => a.status === 503) },
          { label: 'answered 2xx during the outage (from caches)', value: count(outage, (a) => a.status >= 200 && a.status < 300) },
          { label: 'hot-key verifies answered valid from the cache during the outage', value: count(verifiesDuring, (a) => a.valid === true) },
          { label: 'answers that were 500, a hang or a dropped connection', value: count(answers, (a) => a.status === 0 || a.status === 500) },
          { label: 'slowest 503 during the outage (ms)', value: Math.round(worst503) },
          { label: 'slowest answer of the whole run (ms)', value: Math.round(Math.max(...answers.map((a) => a.ms))) },
          { label: 'acknowledged writes checked in the database', value: ackedTenants.length + ackedEvents.length },
          { label: 'acknowledged writes missing', value: missing },
          { label: 'writes answered 503 that had committed anyway', value: committedUnacknowledged },
          { label: 'audit chains verified intact', value: tenantIds.length },
          { label: 'outage (s, stop returned to start called)', value: Number((duringMs / 1000).toFixed(2)) },
          { label: 'pg_ctl stop / start took (ms)', value: `${Math.round(down - stopCalled)} / ${Math.round(up - startCalled)}` },
          { label: 'recovery: ready and writing again after PostgreSQL was up (ms)', value: Math.round(recoveryMs) },
          { label: 'load duration (s)', value: Number(((loadEnded - loadStarted) / 1000).toFixed(2)) },
        ],
      );
    },
    PROCESS_TEST_TIMEOUT_MS,
  );
});
