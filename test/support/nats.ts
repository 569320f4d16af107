// NATS for tests: the machine's JetStream server (TEST_NATS_URL, 127.0.0.1:4222 by default), each
// test with a stream and subject prefix of its own (streams may not overlap subjects), deleted
// afterwards; private nats-server processes for the tests that stop and restart one; and the
// stream read back message by message, as a consumer would see it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from 'nats';
import { changeEventData } from '../../src/domain/change-event.js';
import { SEQ_HEADER } from '../../src/events/nats-relay.js';
import type { Database } from '../../src/store/database.js';
import { insertChangeEvent } from '../../src/store/events.js';
import { freePort } from '../process/spawn.js';

export const TEST_NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
/** TEST_NATS=off (make test-short, for machines without NATS) skips the tests that need a NATS server. */
export const NATS_TESTS_ON = process.env.TEST_NATS !== 'off';
export const NATS_SERVER = process.env.NATS_SERVER ?? '/usr/sbin/nats-server';

/** A stream name and a subject prefix no other test uses. */
export function uniqueStream(): { stream: string; prefix: string } {
  const tag = `${process.pid}_${randomBytes(4).toString('hex')}`;
  return { stream: `TR_TEST_${tag}`, prefix: `trtest.${tag}.events` };
}

export async function withNats<T>(url: string, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: url, timeout: 5_000 });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

export async function deleteStream(url: string, stream: string): Promise<void> {
  await withNats(url, async (nc) => {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(stream).catch(() => false);
  });
}

/** One message of the stream as a consumer reads it. */
export interface StreamedEvent {
  streamSeq: number;
  subject: string;
  msgId: string | undefined;
  seqHeader: number;
  event: { id: string; seq: number; type: string };
}

/** Every message of the stream, in stream order. */
export async function readStream(url: string, stream: string): Promise<StreamedEvent[]> {
  return withNats(url, async (nc) => {
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(stream);
    const messages: StreamedEvent[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq += 1) {
      const message = await jsm.streams.getMessage(stream, { seq });
      messages.push({
        streamSeq: message.seq,
        subject: message.subject,
        msgId: message.header.get('Nats-Msg-Id') || undefined,
        seqHeader: Number(message.header.get(SEQ_HEADER)),
        event: message.json(),
      });
    }
    return messages;
  });
}

/** How many messages the stream holds (0 when it does not exist yet). */
export async function streamCount(url: string, stream: string): Promise<number> {
  return withNats(url, async (nc) => {
    const jsm = await nc.jetstreamManager();
    return jsm.streams.info(stream).then(
      (info) => info.state.messages,
      () => 0,
    );
  });
}

/** Commits `count` change events, one transaction each, as changes do; resolves with their ids. */
export async function writeEvents(db: Database, count: number, type = 'tenant.updated'): Promise<string[]> {
  const ids: string[] = [];
  for (let index = 0; index < count; index += 1) {
    const id = randomUUID();
    const tenantId = randomUUID();
    await db.transaction((tx) =>
      insertChangeEvent(tx, {
        id,
        type,
        tenantId,
        occurredAt: new Date(),
        data: changeEventData({ id: 'test', name: 'test' }, { id: tenantId, type: 'tenant', name: null }, null, { index: String(index) }),
      }),
    );
    ids.push(id);
  }
  return ids;
}

/** The ids of the feed's events in seq order. */
export async function feedIds(db: Database): Promise<string[]> {
  const rows = await db.query<{ id: string }>('SELECT id FROM change_events ORDER BY seq');
  return rows.map((row) => row.id);
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A nats-server of the test's own, with JetStream on a directory of its own; stopped and started at will. */
export interface PrivateNats {
  url: string;
  port: number;
  /** Starts the server (again, on the same port and store) and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops it with the signal (SIGTERM: a clean stop; SIGKILL: a crash) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it and deletes its store. */
  remove(): Promise<void>;
}

export async function privateNats(port?: number): Promise<PrivateNats> {
  const chosen = port ?? (await freePort());
  const dir = mkdtempSync(path.join(tmpdir(), 'tr-nats-'));
  let child: ChildProcess | null = null;
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await exited;
  };
  return {
    url: `nats://127.0.0.1:${chosen}`,
    port: chosen,
    async start() {
      if (child) return;
      child = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(chosen), '-js', '-sd', dir], { stdio: 'ignore' });
      const deadline = Date.now() + 30_000;
      while (!(await answers(chosen))) {
        if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}`);
        if (Date.now() > deadline) throw new Error('nats-server did not answer within 30 s');
        await sleep(50);
      }
    },
    stop,
    async remove() {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
