// One log line per request, written when the answer is sent: method, route pattern (not the raw
// URL, which may carry identifiers and has unbounded cardinality), status, duration, request id
// (bound by the child logger), the caller and the tenant concerned. Fastify's own pair of
// "incoming"/"completed" lines is replaced.
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { observeRequest } from '../observability/metrics.js';

/** The tenant a request names (path, query or body), as the routes call it. */
function tenantOf(request: FastifyRequest): string | undefined {
  const named = (part: unknown) => (part as { tenant_id?: unknown } | undefined)?.tenant_id;
  const id = named(request.params) ?? named(request.query) ?? named(request.body);
  return typeof id === 'string' ? id : undefined;
}

const QUIETER_THAN_INFO = new Set(['warn', 'error', 'fatal', 'silent']);

export class RequestLog extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'request_id' });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    observeRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    // Below info, skip building the line at all: this runs on every request of the hot paths.
    if (!error && QUIETER_THAN_INFO.has(reply.log.level)) return;
    const principal = request.principal;
    const line = {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status: reply.statusCode,
      duration_ms: Math.round(reply.elapsedTime * 10) / 10,
      tenant_id: tenantOf(request) ?? principal?.tenantId ?? null,
      principal: principal ? principal.sub : null,
      principal_name: principal ? principal.name : null,
    };
    if (error) reply.log.error({ ...line, err: error }, 'request failed');
    else reply.log.info(line, 'request');
  }
}
