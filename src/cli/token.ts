// `npm run token -- --role platform_admin [--tenant <id>] [--sub <id>] [--name <n>] [--url <base>]`
// prints an access token from a running service's embedded development issuer (make dev without
// KEYCLOAK_ISSUER). The token is minted by the service, whose key pair never leaves its memory.
// Without --url it asks the service where ADDR (the service's own variable) puts it.
import { parseArgs } from 'node:util';

const USAGE =
  'usage: npm run token -- --role <role> [--role <role>...] [--tenant <tenant id>] [--sub <id>] [--name <name>] [--url <base URL; default from ADDR>]';

/**
 * Where a service listening on ADDR answers on this machine: a listener on every interface
 * (':8090', '0.0.0.0:8090', '[::]:8090') on the loopback address of its family, a named host as
 * named ('[::1]:8090' keeps its brackets). The default is config.ts's (':8090').
 */
function serviceUrlOf(addr: string | undefined): string {
  const listen = addr === undefined || addr === '' ? ':8090' : addr;
  const cut = listen.lastIndexOf(':');
  const host = listen.slice(0, cut);
  const loopback = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host;
  return `http://${loopback}:${listen.slice(cut + 1)}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string', multiple: true, default: [] },
      tenant: { type: 'string' },
      sub: { type: 'string' },
      name: { type: 'string' },
      url: { type: 'string', default: serviceUrlOf(process.env.ADDR) },
    },
  });
  if (values.role.length === 0 && values.tenant === undefined) throw new Error(USAGE);
  const response = await fetch(new URL('/dev/token', values.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      roles: values.role,
      ...(values.tenant ? { tenant_id: values.tenant } : {}),
      ...(values.sub ? { sub: values.sub } : {}),
      ...(values.name ? { name: values.name } : {}),
    }),
  }).catch(() => {
    throw new Error(`no service answers at ${values.url}; start it with \`make dev\``);
  });
  if (response.status === 404) throw new Error(`${values.url} runs no development issuer (it has KEYCLOAK_ISSUER set or is not APP_ENV=dev)`);
  if (!response.ok) throw new Error(`${values.url} refused: ${response.status} ${await response.text()}`);
  console.log(((await response.json()) as { access_token: string }).access_token);
}

main().catch((error: unknown) => {
  console.error(`token: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
