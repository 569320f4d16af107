// The NATS side of the JetStream relay (nats-relay.ts): connecting with the credentials a NATS_URL
// may carry kept out of every log line, and making sure the stream the relay publishes to exists
// and takes its subjects. An operator's stream is never rewritten: what it lacks is reported.
import { connect, nanos, StorageType, type NatsConnection, type NatsError, type StreamConfig } from 'nats';

/**
 * The stream's duplicate window: a re-publish of an event within it is answered "duplicate" and not
 * stored again. The relay re-publishes only the events it had in flight when something failed (at
 * most IN_FLIGHT of them), once NATS answers again or another replica takes the lease (seconds);
 * 20 minutes covers a NATS restart and a long failover with room to spare. Only a NATS outage
 * longer than this, in which a publish was stored but its answer lost, can store such an event twice.
 */
export const DUPLICATE_WINDOW_MS = 20 * 60_000;

// The handshake with one server; a replica that cannot reach NATS tries again after its back-off.
const CONNECT_TIMEOUT_MS = 5_000;
// Between reconnect attempts once connected (the client's default 2 s plus its jitter): a
// restarted server is found again within seconds.
const RECONNECT_WAIT_MS = 2_000;
// A dead TCP connection (a server that vanished without a FIN) is noticed within ~30 s instead of
// the client's default of several minutes.
const PING_INTERVAL_MS = 10_000;
const MAX_PINGS_OUT = 3;

export interface NatsServers {
  /** The URLs without user or password: what connects, and what may be logged. */
  servers: string[];
  user?: string;
  pass?: string;
}

/**
 * Takes the user and password out of the URLs (nats://user:pass@host:4222) so they travel as
 * connection options and never appear where a server address is logged. One user for all servers:
 * the first URL that names one decides.
 */
export function natsServers(urls: readonly string[]): NatsServers {
  let user: string | undefined;
  let pass: string | undefined;
  const servers = urls.map((raw) => {
    const url = URL.parse(raw);
    // Configuration refuses what does not parse; should one get here, what could be credentials
    // (everything up to an @) is dropped rather than logged.
    if (!url) return raw.replace(/\/\/.*@/, '//');
    if (url.username !== '' && user === undefined) {
      user = decodeURIComponent(url.username);
      pass = decodeURIComponent(url.password);
    }
    return `${url.protocol}//${url.host}`;
  });
  return { servers, ...(user === undefined ? {} : { user, pass: pass ?? '' }) };
}

/**
 * One attempt to connect; throws when no server answers. Once connected, the client reconnects on
 * its own, forever: the relay only connects again when the connection is closed for good.
 */
export function connectNats(target: NatsServers, name: string): Promise<NatsConnection> {
  return connect({
    servers: target.servers,
    ...(target.user === undefined ? {} : { user: target.user, pass: target.pass }),
    name,
    timeout: CONNECT_TIMEOUT_MS,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: RECONNECT_WAIT_MS,
    pingInterval: PING_INTERVAL_MS,
    maxPingOut: MAX_PINGS_OUT,
  });
}

/** True when a stream subject (which may hold * and > wildcards) takes every subject under `prefix`. */
export function subjectCovers(streamSubject: string, prefix: string): boolean {
  const pattern = streamSubject.split('.');
  const wanted = [...prefix.split('.'), '>'];
  for (const [index, token] of pattern.entries()) {
    if (token === '>') return true;
    const other = wanted[index];
    if (other === undefined || other === '>') return false;
    if (token !== '*' && token !== other) return false;
  }
  return false;
}

const STREAM_NOT_FOUND = 10059;

export interface StreamCheck {
  created: boolean;
  /** What an existing stream lacks for the relay's guarantees (logged; the stream is left as it is). */
  warnings: string[];
}

/**
 * Creates the stream when it does not exist: file storage, the relay's subjects, the duplicate
 * window above, and the feed's retention as its maximum age. An existing stream keeps every
 * setting; it must take the relay's subjects (publishing to it is pointless otherwise, so that
 * throws), and a shorter duplicate window is reported.
 */
export async function ensureStream(nc: NatsConnection, stream: string, prefix: string, maxAgeMs: number | null): Promise<StreamCheck> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(stream).catch((error: NatsError) => {
    if (error.api_error?.err_code === STREAM_NOT_FOUND) return null;
    throw error;
  });
  if (info === null) {
    const config: Partial<StreamConfig> = {
      name: stream,
      subjects: [`${prefix}.>`],
      storage: StorageType.File,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      ...(maxAgeMs === null ? {} : { max_age: nanos(maxAgeMs) }),
      description: 'Change events of tenant-registry, one message per event (Nats-Msg-Id = event id)',
    };
    await jsm.streams.add(config);
    return { created: true, warnings: [] };
  }
  if (!info.config.subjects?.some((subject) => subjectCovers(subject, prefix))) {
    throw new Error(`the stream ${stream} exists but does not take the subjects ${prefix}.>; add them to it or name another stream`);
  }
  const warnings: string[] = [];
  const windowMs = info.config.duplicate_window / 1_000_000;
  if (windowMs < DUPLICATE_WINDOW_MS) {
    warnings.push(
      `the stream ${stream} de-duplicates over ${Math.round(windowMs / 1000)} s, less than the ${DUPLICATE_WINDOW_MS / 1000} s the relay counts on: an event re-published after a longer outage may be stored twice`,
    );
  }
  return { created: false, warnings };
}
