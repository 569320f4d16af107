// The service's pino logger: JSON lines (what log pipelines ingest) everywhere, except a readable
// coloured output in dev on a terminal. Every line is redacted (redact.ts): secret-named fields
// as the object is formatted, secret-shaped text in the finished line. With logs exported over
// OTLP, the finished, redacted line is also handed to the exporter (copy), whatever stdout shows.
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from '../config.js';
import { redactFields, redactShapes } from './redact.js';

export interface LoggerOptions {
  /** Adds fields to every line (the active trace's ids). */
  mixin?: () => Record<string, unknown>;
  /** Where lines go; standard output by default. Tests capture them here. */
  destination?: DestinationStream;
  /** Also receives every line, redacted as written, in JSON (log-export.ts sends it as an OTLP record). */
  copy?: (line: string) => void;
}

export function createLogger(config: Pick<Config, 'appEnv' | 'logLevel'>, options: LoggerOptions = {}): Logger {
  const settings: pino.LoggerOptions = {
    level: config.logLevel,
    base: { service: 'tenant-registry' },
    formatters: { log: (object) => redactFields(object) as Record<string, unknown> },
    ...(options.mixin ? { mixin: options.mixin } : {}),
  };
  if (config.appEnv === 'dev' && process.stdout.isTTY && !options.destination) {
    // pino-pretty runs in a worker and reformats the lines; it gets them already redacted.
    const pretty = pino.transport({
      target: 'pino-pretty',
      options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' },
    }) as DestinationStream;
    return pino(settings, redacting(pretty, options.copy));
  }
  return pino(settings, redacting(options.destination ?? pino.destination({ dest: 1, sync: true }), options.copy));
}

function redacting(destination: DestinationStream, copy: ((line: string) => void) | undefined): DestinationStream {
  if (!copy) return { write: (line: string) => destination.write(redactShapes(line)) };
  return {
    write: (line: string) => {
      const redacted = redactShapes(line);
      destination.write(redacted);
      copy(redacted);
    },
  };
}
