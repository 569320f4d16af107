// LISTEN on a dedicated connection (a pooled one would be handed to other queries). When that
// connection drops, listening resumes on a new one, retried with a capped backoff; onState tells
// the caller when notifications may have been missed, so it can fall back to polling. A
// connection can also die silently (a network path that drops packets without a reset): an idle
// listener would never notice, so a heartbeat query proves it alive every few seconds.
import pg from 'pg';

// Start quickly after a blip, then back off so a dead server is not hammered.
const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5_000;

export interface ListenerOptions {
  /** How often the idle connection is asked a trivial query. */
  heartbeatMs?: number;
  /** How long its answer may take before the connection counts as lost. */
  heartbeatTimeoutMs?: number;
}

export async function listenOnPg(
  url: string,
  channel: string,
  onMessage: (payload: string) => void,
  onState: (listening: boolean) => void,
  options: ListenerOptions = {},
): Promise<() => Promise<void>> {
  // Well within the one second a revocation may take to reach every replica once polling starts.
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3_000;
  let client: pg.Client | undefined;
  let stopped = false;
  let retryMs = RETRY_FIRST_MS;
  let timer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  const connect = async () => {
    const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, keepAlive: true });
    const lost = () => {
      if (client !== next || stopped) return;
      client = undefined;
      clearInterval(heartbeat);
      onState(false);
      next.end().catch(() => {});
      schedule();
    };
    next.on('error', lost);
    next.on('end', lost);
    next.on('notification', (message) => {
      if (message.channel === channel) onMessage(message.payload ?? '');
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch {
      next.removeAllListeners('end');
      await next.end().catch(() => {});
      schedule();
      return;
    }
    if (stopped) {
      await next.end().catch(() => {});
      return;
    }
    client = next;
    retryMs = RETRY_FIRST_MS;
    onState(true);
    heartbeat = setInterval(() => {
      let answered = false;
      const late = setTimeout(() => answered || lost(), heartbeatTimeoutMs);
      late.unref();
      next.query('SELECT 1').then(
        () => ((answered = true), clearTimeout(late)),
        () => ((answered = true), clearTimeout(late), lost()),
      );
    }, heartbeatMs);
    heartbeat.unref();
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void connect(), retryMs);
    timer.unref();
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  };

  onState(false);
  await connect();
  return async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    clearInterval(heartbeat);
    const current = client;
    client = undefined;
    await current?.end().catch(() => {});
  };
}
