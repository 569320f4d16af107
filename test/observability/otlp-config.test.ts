// The OpenTelemetry variables as config.ts reads them: which signals are exported over OTLP and
// how, the defaults that keep the service as it was (scraped metrics, logs on stdout), and the
// values refused at boot with one line naming the variable.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const RECEIVER = 'http://otel-collector:4318';

/** The ConfigError loadConfig throws for env (the test fails if it throws none). */
function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('OTLP configuration: what is exported', () => {
  it('exports nothing by default: metrics stay on GET /metrics, logs on stdout', () => {
    expect(loadConfig({}).telemetry).toEqual({ traces: null, metrics: null, logs: null });
  });

  it('an endpoint alone turns traces on, as before, and neither metrics nor logs', () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER }).telemetry).toEqual({
      traces: { protocol: 'http/protobuf' },
      metrics: null,
      logs: null,
    });
  });

  it('OTEL_METRICS_EXPORTER=otlp and OTEL_LOGS_EXPORTER=otlp push both, every minute by default', () => {
    const { telemetry } = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER, OTEL_METRICS_EXPORTER: 'otlp', OTEL_LOGS_EXPORTER: 'otlp' });
    expect(telemetry.metrics).toEqual({ protocol: 'http/protobuf', exportIntervalMs: 60_000 });
    expect(telemetry.logs).toEqual({ protocol: 'http/protobuf' });
  });

  it('takes lists, case and blanks as the specification allows', () => {
    for (const value of ['otlp,prometheus', ' Prometheus , OTLP ', 'otlp,otlp', 'otlp,']) {
      expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER, OTEL_METRICS_EXPORTER: value }).telemetry.metrics, value).not.toBeNull();
    }
    for (const value of ['prometheus', 'none']) {
      expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER, OTEL_METRICS_EXPORTER: value }).telemetry.metrics, value).toBeNull();
    }
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER, OTEL_LOGS_EXPORTER: 'none' }).telemetry.logs).toBeNull();
  });

  it('a signal endpoint suffices for its signal and turns no other on', () => {
    const { telemetry } = loadConfig({
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${RECEIVER}/v1/metrics`,
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: `${RECEIVER}/v1/logs`,
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_LOGS_EXPORTER: 'otlp',
    });
    expect(telemetry.traces).toBeNull();
    expect(telemetry.metrics).not.toBeNull();
    expect(telemetry.logs).not.toBeNull();
  });

  it('a signal protocol wins over the general one, which wins over http/protobuf', () => {
    const { telemetry } = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: 'http/protobuf',
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_LOGS_EXPORTER: 'otlp',
      OTEL_METRIC_EXPORT_INTERVAL: '15000',
    });
    expect(telemetry).toEqual({
      traces: { protocol: 'http/json' },
      metrics: { protocol: 'http/json', exportIntervalMs: 15_000 },
      logs: { protocol: 'http/protobuf' },
    });
  });

  it('OTEL_SDK_DISABLED=true (any case) exports nothing, whatever else is set', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER, OTEL_METRICS_EXPORTER: 'otlp', OTEL_LOGS_EXPORTER: 'otlp' };
    expect(loadConfig({ ...env, OTEL_SDK_DISABLED: 'TRUE' }).telemetry).toEqual({ traces: null, metrics: null, logs: null });
    expect(loadConfig({ ...env, OTEL_SDK_DISABLED: 'false' }).telemetry.logs).not.toBeNull();
  });

  it('prometheus is accepted where GET /metrics is served (dev, or METRICS_ADDR)', () => {
    expect(() => loadConfig({ OTEL_METRICS_EXPORTER: 'prometheus' })).not.toThrow();
    expect(() => loadConfig({ OTEL_METRICS_EXPORTER: 'prometheus', METRICS_ON_MAIN_LISTENER: 'false', METRICS_ADDR: ':9100' })).not.toThrow();
  });
});

describe('OTLP configuration: refused at boot', () => {
  it.each<[string, Record<string, string>, string]>([
    ['an unknown metrics exporter', { OTEL_METRICS_EXPORTER: 'console' }, 'OTEL_METRICS_EXPORTER'],
    ['an unknown one in a list', { OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER, OTEL_METRICS_EXPORTER: 'otlp,statsd' }, 'OTEL_METRICS_EXPORTER'],
    ['none beside another', { OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER, OTEL_METRICS_EXPORTER: 'none,otlp' }, 'OTEL_METRICS_EXPORTER'],
    ['an unknown logs exporter', { OTEL_LOGS_EXPORTER: 'console' }, 'OTEL_LOGS_EXPORTER'],
    ['prometheus for logs', { OTEL_LOGS_EXPORTER: 'prometheus' }, 'OTEL_LOGS_EXPORTER'],
    ['gRPC', { OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL'],
    ['gRPC for metrics', { OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL'],
    ['a metrics endpoint that is no URL', { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT'],
    ['a logs endpoint that is not http', { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'ftp://collector/v1/logs' }, 'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT'],
    ['an interval that is no number', { OTEL_METRIC_EXPORT_INTERVAL: '1m' }, 'OTEL_METRIC_EXPORT_INTERVAL'],
    ['an interval under 100 ms', { OTEL_METRIC_EXPORT_INTERVAL: '10' }, 'OTEL_METRIC_EXPORT_INTERVAL'],
    ['an OTEL_SDK_DISABLED that is no boolean', { OTEL_SDK_DISABLED: 'yes' }, 'OTEL_SDK_DISABLED'],
  ])('%s, naming %s', (_, env, variable) => {
    const error = refusal(env);
    expect(error.problems.map((problem) => problem.variable)).toEqual([variable]);
    expect(error.message).toMatch(new RegExp(`^invalid ${variable}: expected `));
  });

  it('says which exporters there are, without echoing the value', () => {
    const error = refusal({ OTEL_METRICS_EXPORTER: 'consolex' });
    expect(error.message).toBe('invalid OTEL_METRICS_EXPORTER: expected a comma-separated list of otlp and prometheus, or none (unset: prometheus)');
    expect(refusal({ OTEL_LOGS_EXPORTER: 'consolex' }).message).toBe('invalid OTEL_LOGS_EXPORTER: expected otlp or none (unset: none, standard output only)');
  });

  it('refuses OTLP metrics or logs with nowhere to send them, naming the signal endpoint', () => {
    const error = refusal({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_LOGS_EXPORTER: 'otlp' });
    expect(error.problems).toEqual([
      { variable: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', expected: 'an http(s) URL when OTEL_METRICS_EXPORTER includes otlp and OTEL_EXPORTER_OTLP_ENDPOINT is empty' },
      { variable: 'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT', expected: 'an http(s) URL when OTEL_LOGS_EXPORTER includes otlp and OTEL_EXPORTER_OTLP_ENDPOINT is empty' },
    ]);
  });

  it('refuses prometheus where GET /metrics is served nowhere (outside dev by default)', () => {
    const prod = {
      APP_ENV: 'prod',
      DATABASE_URL: 'postgres://registry@db.internal:5432/registry',
      KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod',
      KEYCLOAK_AUDIENCE: 'tenant-registry',
      KEYCLOAK_PROVISIONING: 'off',
      API_KEY_PEPPER: 'p'.repeat(32),
    };
    expect(() => loadConfig(prod)).not.toThrow();
    const error = refusal({ ...prod, OTEL_METRICS_EXPORTER: 'otlp,prometheus', OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER });
    expect(error.problems.map((problem) => problem.variable)).toEqual(['OTEL_METRICS_EXPORTER']);
    expect(error.message).toContain('METRICS_ADDR or METRICS_ON_MAIN_LISTENER=true');
    expect(loadConfig({ ...prod, OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: RECEIVER }).telemetry.metrics).not.toBeNull();
  });

  it('names an endpoint with credentials without echoing them', () => {
    const error = refusal({ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://user:hunter2secret@collector' });
    expect(error.variable).toBe('OTEL_EXPORTER_OTLP_ENDPOINT');
    expect(error.message).not.toContain('hunter2secret');
  });
});
