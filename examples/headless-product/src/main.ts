// Runs the example product: REGISTRY_URL and REGISTRY_TOKEN (a service account's token) from the
// environment, PORT to listen on (8100).
import { createKeyVerifier } from '@tenant-registry/verify';
import { buildProduct } from './app.js';

const registryUrl = process.env.REGISTRY_URL;
const token = process.env.REGISTRY_TOKEN;
if (!registryUrl || !token) {
  process.stderr.write('REGISTRY_URL and REGISTRY_TOKEN must be set\n');
  process.exit(2);
}

const verifier = createKeyVerifier({
  registryUrl,
  token,
  // A registry restart should not take the product down with it: keys seen in the last minute
  // keep their verdicts meanwhile. Unknown keys are refused (503) until it is back.
  whenUnreachable: { mode: 'last-known', forMs: 60_000 },
  onError: (error) => process.stderr.write(`registry: ${error instanceof Error ? error.message : String(error)}\n`),
});
const app = await buildProduct(verifier);
await app.listen({ host: '0.0.0.0', port: Number(process.env.PORT ?? 8100) });

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void app.close().then(() => verifier.close());
  });
}
