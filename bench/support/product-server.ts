// The headless product of the middleware benchmark (bench/verify-middleware.ts), run as its own
// process so that it does not share one with the load generator. Its API is the example product's
// (examples/headless-product/src/app.ts): GET /v1/documents in a child context, answering the
// caller's tenant and one document, /healthz open. PRODUCT_VARIANT says how a caller's API key
// is checked:
//
//   none        not at all: the baseline. It answers the same bytes as the others (the tenant is
//               PRODUCT_SLUG, the hot key's), so only the check differs between the variants.
//   middleware  @tenant-registry/verify's Fastify plugin, registered as the example registers it:
//               the registry's verdicts held in this process and evicted by its change stream.
//   remote      the naive integration: POST /v1/internal/api-keys/verify asked on every request,
//               with the same question and the same refusals as the plugin, through a keep-alive
//               client (REMOTE_CLIENT: fetch, the global one, or http, node:http with a
//               keep-alive Agent), each question bounded by the verifier's own 2 s timeout.
//
// REGISTRY_URL and REGISTRY_TOKEN (a registry_service token) are needed by the last two. Prints
// {"port": N} on stdout once it listens; the middleware variant only once the change stream is
// live, so that no load reaches it while every verdict is still trusted for 0.5 s only.
// GET /bench/stats (open) says how often the registry was asked, for the benchmark's checks.
import http from 'node:http';
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import { createKeyVerifier, keyFromHeaders, refusalFor, type Answer, type KeyVerifier } from '@tenant-registry/verify';
import { apiKeyPlugin } from '@tenant-registry/verify/fastify';

const PRODUCT = 'compliance';
const REQUEST_TIMEOUT_MS = 2_000;
const DOCUMENTS = [{ id: 'doc-1', title: 'Risk assessment' }];

const variant = process.env.PRODUCT_VARIANT ?? '';
const registryUrl = process.env.REGISTRY_URL ?? '';
const token = process.env.REGISTRY_TOKEN ?? '';
const slug = process.env.PRODUCT_SLUG ?? 'bench';
const remoteClient = process.env.REMOTE_CLIENT ?? 'fetch';

function fail(message: string): never {
  process.stderr.write(`product-server: ${message}\n`);
  process.exit(2);
}

if (!['none', 'middleware', 'remote'].includes(variant)) fail('PRODUCT_VARIANT must be none, middleware or remote');
if (variant !== 'none' && (registryUrl === '' || token === '')) fail('REGISTRY_URL and REGISTRY_TOKEN must be set');
if (!['fetch', 'http'].includes(remoteClient)) fail('REMOTE_CLIENT must be fetch or http');

const onError = (error: unknown) => process.stderr.write(`registry: ${error instanceof Error ? error.message : String(error)}\n`);

/** One verify question over node:http: the status and the body's text. */
function postOverHttp(agent: http.Agent, url: URL, headers: Record<string, string>, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, timeout: REQUEST_TIMEOUT_MS },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}

/** The registry asked on every request; the verdict lands on request.apiKey, as the plugin leaves it. */
function remoteGuard(): { plugin: FastifyPluginCallback; calls: () => number } {
  const verifyUrl = new URL('/v1/internal/api-keys/verify', registryUrl);
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const agent = new http.Agent({ keepAlive: true });
  let calls = 0;
  const ask = async (key: string): Promise<Answer> => {
    calls += 1;
    const body = JSON.stringify({ key, product: PRODUCT });
    try {
      if (remoteClient === 'http') {
        const { status, text } = await postOverHttp(agent, verifyUrl, headers, body);
        if (status !== 200) throw new Error(`the registry answered ${status} to a verify question`);
        return JSON.parse(text) as Answer;
      }
      const response = await fetch(verifyUrl, { method: 'POST', headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`the registry answered ${response.status} to a verify question`);
      }
      return (await response.json()) as Answer;
    } catch (error) {
      onError(error);
      return { valid: false, code: 'REGISTRY_UNAVAILABLE' };
    }
  };
  const plugin: FastifyPluginCallback = (app, _options, done) => {
    app.decorateRequest('apiKey', null);
    app.addHook('onRequest', async (request, reply) => {
      const key = keyFromHeaders(request.headers);
      const answer = key === undefined ? null : await ask(key);
      if (answer?.valid) {
        request.apiKey = answer;
        return;
      }
      const refusal = refusalFor(answer);
      return reply.code(refusal.status).headers(refusal.headers).send(refusal.body);
    });
    done();
  };
  // Protects the context that registers it, as the plugin does (what fastify-plugin sets).
  Object.assign(plugin, { [Symbol.for('skip-override')]: true });
  return { plugin, calls: () => calls };
}

async function build(): Promise<{ app: FastifyInstance; verifier: KeyVerifier | null }> {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ ok: true }));
  if (variant === 'none') {
    app.get('/bench/stats', async () => ({ registryCalls: 0 }));
    await app.register(async (api) => {
      api.get('/v1/documents', async () => ({ tenant: slug, documents: DOCUMENTS }));
    });
    return { app, verifier: null };
  }
  if (variant === 'remote') {
    const guard = remoteGuard();
    app.get('/bench/stats', async () => ({ registryCalls: guard.calls() }));
    await app.register(async (api) => {
      await api.register(guard.plugin);
      api.get('/v1/documents', async (request) => ({ tenant: request.apiKey?.slug, documents: DOCUMENTS }));
    });
    return { app, verifier: null };
  }
  const verifier = createKeyVerifier({ registryUrl, token, onError });
  app.get('/bench/stats', async () => verifier.stats());
  await app.register(async (api) => {
    await api.register(apiKeyPlugin, { verifier, product: PRODUCT });
    api.get('/v1/documents', async (request) => ({ tenant: request.apiKey?.slug, documents: DOCUMENTS }));
  });
  return { app, verifier };
}

const { app, verifier } = await build();
await verifier?.whenLive(20_000);
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ port: Number(new URL(address).port) })}\n`);

process.once('SIGTERM', () => {
  void app
    .close()
    .then(() => verifier?.close())
    .finally(() => process.exit(0));
});
