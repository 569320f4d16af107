// LISTEN on one dedicated connection per database handle (a pooled one would be handed to other
// queries), shared by every channel the process listens on: the cache invalidations and the change
// feed's signal cost a replica one connection, not one each. When that connection drops,
// listening resumes on a new one, retried with a capped backoff; each subscriber's onState tells
// it when notifications may have been missed, so it can fall back to polling. A connection can
// also die silently (a network path that drops packets without a reset): an idle listener would
// never notice, so a heartbeat query proves it alive every few seconds.
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

export interface PgListener {
  /**
   * Listens on `channel` until the returned function is called. onState(false) comes first, then
   * true once the channel is listened on, false again whenever the connection is lost, and so on.
   * Resolves once the first attempt to listen has ended, whether it succeeded or a retry waits.
   */
  subscribe(channel: string, onMessage: (payload: string) => void, onState: (listening: boolean) => void): Promise<() => Promise<void>>;
}

interface Session {
  client: pg.Client;
  /** The channels LISTENed on this connection. */
  listened: Set<string>;
}

interface Subscriber {
  channel: string;
  onMessage(payload: string): void;
  onState(listening: boolean): void;
  /** The state this subscriber was last told. */
  told: boolean;
}

/**
 * A subscriber's callback that throws must not stop the others from hearing, nor the connection's
 * own bookkeeping (a lost connection must still be replaced): the fault is reported as a process
 * warning instead.
 */
function isolated(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    process.emitWarning(error instanceof Error ? error : String(error), { code: 'TR_LISTENER_CALLBACK' });
  }
}

/** One connection for every channel subscribed through it; opened by the first subscriber, closed after the last. */
export function createPgListener(url: string, options: ListenerOptions = {}): PgListener {
  // Well within the one second a revocation may take to reach every replica once polling starts.
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3_000;
  const subscribers = new Set<Subscriber>();
  /** The connection listened on now, and the channels it LISTENs. */
  let session: Session | undefined;
  /** The LISTEN and UNLISTEN statements of the session, one after the other. */
  let statements: Promise<void> = Promise.resolve();
  /** The connection attempt under way, if any. */
  let connecting: Promise<void> | undefined;
  let retryMs = RETRY_FIRST_MS;
  let timer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  const tell = (subscriber: Subscriber, listening: boolean) => {
    if (subscriber.told === listening) return;
    subscriber.told = listening;
    isolated(() => subscriber.onState(listening));
  };

  const stopTimers = () => {
    clearTimeout(timer);
    timer = undefined;
    clearInterval(heartbeat);
    heartbeat = undefined;
  };

  const lose = (lost: Session) => {
    if (session !== lost) return;
    session = undefined;
    stopTimers();
    for (const subscriber of subscribers) tell(subscriber, false);
    lost.client.end().catch(() => {});
    schedule();
  };

  /** Runs `step` after the statements before it, whether or not they succeeded. */
  const enqueue = (step: () => Promise<void>): Promise<void> => {
    statements = statements.then(step, step);
    return statements;
  };

  // LISTENs every subscribed channel not yet listened on, then tells its subscribers.
  const catchUp = (on: Session): Promise<void> =>
    enqueue(async () => {
      for (const subscriber of subscribers) {
        if (session !== on) return;
        if (!on.listened.has(subscriber.channel)) {
          try {
            await on.client.query(`LISTEN ${pg.escapeIdentifier(subscriber.channel)}`);
          } catch {
            return lose(on);
          }
          on.listened.add(subscriber.channel);
        }
        // A subscriber that left while its LISTEN was under way is told nothing more.
        if (session === on && subscribers.has(subscriber)) tell(subscriber, true);
      }
    });

  const connect = async () => {
    const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, keepAlive: true });
    const own: Session = { client: next, listened: new Set() };
    const lost = () => lose(own);
    next.on('error', lost);
    next.on('end', lost);
    next.on('notification', (message) => {
      if (session !== own) return;
      for (const subscriber of subscribers) {
        if (subscriber.channel === message.channel) isolated(() => subscriber.onMessage(message.payload ?? ''));
      }
    });
    try {
      await next.connect();
    } catch {
      next.removeAllListeners('end');
      await next.end().catch(() => {});
      schedule();
      return;
    }
    if (subscribers.size === 0) {
      next.removeAllListeners('end');
      await next.end().catch(() => {});
      return;
    }
    session = own;
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
    await catchUp(own);
    // Back to a quick retry only once this connection listens on every channel.
    if (session === own) retryMs = RETRY_FIRST_MS;
  };

  const attempt = (): Promise<void> => {
    connecting ??= connect().finally(() => {
      connecting = undefined;
      // An attempt that ended owning no connection (the last subscriber left meanwhile, and
      // another came) must not leave the new subscriber without a retry.
      if (session === undefined) schedule();
    });
    return connecting;
  };

  const schedule = () => {
    if (subscribers.size === 0 || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      void attempt();
    }, retryMs);
    timer.unref();
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  };

  const close = async () => {
    stopTimers();
    retryMs = RETRY_FIRST_MS;
    const current = session;
    session = undefined;
    await current?.client.end().catch(() => {});
  };

  return {
    async subscribe(channel, onMessage, onState) {
      const subscriber: Subscriber = { channel, onMessage, onState, told: true };
      subscribers.add(subscriber);
      tell(subscriber, false);
      if (session !== undefined) await catchUp(session);
      else if (timer === undefined) await attempt();
      return async () => {
        if (!subscribers.delete(subscriber)) return;
        if (subscribers.size === 0) return close();
        const on = session;
        if (on === undefined) return;
        // Decided in turn, after any LISTEN of this channel still under way.
        await enqueue(async () => {
          if (session !== on || !on.listened.has(channel) || [...subscribers].some((other) => other.channel === channel)) return;
          on.listened.delete(channel);
          await on.client.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).then(
            () => undefined,
            () => lose(on),
          );
        });
      };
    },
  };
}
