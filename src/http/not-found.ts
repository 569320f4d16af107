// Answers for requests no route takes: 405 with an Allow header when the path exists under other
// methods, 404 otherwise. Fastify itself only knows "not found", so this keeps a second router
// of the served paths (fed by onRoute) just to ask "which methods does this path have?".
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import type { FastifyInstance } from 'fastify';
import { sendProblem } from './error-handler.js';
import { AppError } from '../problems.js';

const METHODS: HTTPMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

export interface ServedRoute {
  method: string;
  url: string;
}
const servedByApp = new WeakMap<FastifyInstance, ServedRoute[]>();

/** Every method and path the app serves, as registered (the OpenAPI test compares it to the spec). */
export function servedRoutes(app: FastifyInstance): readonly ServedRoute[] {
  return servedByApp.get(app) ?? [];
}

/** Must be called before any route is added, so onRoute sees them all. */
export function registerNotFoundHandler(app: FastifyInstance): void {
  const paths = FindMyWay({ ignoreTrailingSlash: false });
  const noop = () => {};
  const served: ServedRoute[] = [];
  servedByApp.set(app, served);

  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      paths.on(method as HTTPMethod, route.url, noop);
      served.push({ method, url: route.url });
    }
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '/';
    const allowed = METHODS.filter((method) => method !== request.method && paths.find(method, path) !== null);
    const error =
      allowed.length > 0
        ? new AppError('method_not_allowed', {
            // The path is not echoed: a mistyped URL may carry a token or a key.
            detail: `${request.method} is not allowed on this path`,
            headers: { allow: allowed.join(', ') },
          })
        : new AppError('route_not_found', { detail: `no route answers ${request.method} on this path` });
    return sendProblem(reply, request, error);
  });
}
