// The resource every exported signal carries, so that traces, metrics and logs of one process
// meet in the backend: service.name tenant-registry and the build's service.version, what the host
// says, a service.instance.id per process, and OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, which
// win over all of it (precedence, lowest first: this service's defaults, the host, the environment).
import type { Resource } from '@opentelemetry/resources';

// One per process, on globalThis: the instance id is random, and the tracing preload and service.ts
// (which may reach this file under two URLs) must name the same instance.
const RESOURCE = Symbol.for('tenant-registry.otel-resource');
type WithResource = typeof globalThis & { [RESOURCE]?: Promise<Resource> };

export function serviceResource(): Promise<Resource> {
  const global = globalThis as WithResource;
  global[RESOURCE] ??= detect();
  return global[RESOURCE];
}

async function detect(): Promise<Resource> {
  const [
    { resourceFromAttributes, detectResources, envDetector, hostDetector, serviceInstanceIdDetector },
    { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION },
    { SERVICE_VERSION },
  ] = await Promise.all([import('@opentelemetry/resources'), import('@opentelemetry/semantic-conventions'), import('../version.js')]);
  return resourceFromAttributes({
    [ATTR_SERVICE_NAME]: 'tenant-registry',
    [ATTR_SERVICE_VERSION]: SERVICE_VERSION,
  }).merge(detectResources({ detectors: [hostDetector, serviceInstanceIdDetector, envDetector] }));
}
