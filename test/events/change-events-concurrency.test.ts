// The gapless sequence under concurrent writers (issue 19, point 1; PostgreSQL, where writers
// really overlap): many changes over several tenants commit through a second pool, some rolling
// back on purpose after writing their event and each holding its transaction open a moment after
// the write; the committed events number exactly 1..N, each tenant's tenant_prev_seq chain is
// complete, and a consumer polling GET /v1/events with its cursor the whole time never sees a
// gap nor an event turn up below a seq it was already given.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../src/domain/change-event.js';
import { recordChange, SYSTEM_ORIGIN } from '../../src/services/audit-trail.js';
import type { Database } from '../../src/store/database.js';
import { openPg } from '../../src/store/pg-driver.js';
import { DRIVERS, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { expectChained, readWholeFeed, type Page } from '../support/feed.js';
import { startServerOn, type StartedApp } from '../support/server.js';

const WRITERS = 80;
// Every seventh writer throws after its event is written: its number must not be lost.
const rollsBack = (index: number) => index % 7 === 3;

describe.runIf(DRIVERS.includes('pg'))('change events under concurrent writers [pg]', () => {
  let database: TestDatabase;
  let server: StartedApp;
  let writers: Database;
  beforeAll(async () => {
    database = await openMigratedDatabase('pg');
    server = await startServerOn(database.db);
    // Writers of their own, so that as many transactions overlap as the test starts.
    writers = openPg({ url: database.url!, poolSize: 20 });
  });
  afterAll(async () => {
    await writers?.close();
    await server?.close();
    await database?.close();
  });

  it('numbers committed events 1..N, chains each tenant, and a polling reader sees no gap nor a late hole', async () => {
    const tenants = await Promise.all(Array.from({ length: 5 }, () => createTenant(server.api)));
    const before = (await readWholeFeed(server.api)).length;

    // The reader: follows its cursor with small pages for as long as the writers run, and then
    // until it has caught up with the head.
    const pages: ChangeEvent[][] = [];
    let writing = true;
    const reader = (async () => {
      let cursor = String(before);
      for (let round = 0; round < 100_000; round += 1) {
        // Only a read that started after the last commit can say the reader caught up.
        const last = !writing;
        const answer = await server.api.get<Page>(`/v1/events?after=${cursor}&limit=7`);
        if (answer.status !== 200) throw new Error(`GET /v1/events: ${answer.status} ${answer.text}`);
        pages.push(answer.body.items);
        cursor = answer.body.next_cursor;
        if (last && !answer.body.has_more) return;
      }
      throw new Error('the reader never caught up');
    })();

    const outcomes = await Promise.allSettled(
      Array.from({ length: WRITERS }, (_, index) =>
        writers.transaction(async (tx) => {
          const tenant = tenants[index % tenants.length]!;
          await recordChange(
            tx,
            SYSTEM_ORIGIN,
            { action: 'tenant.updated', crud: 'u', tenant, fields: { writer: String(index) } },
            new Date(),
          );
          // Held open a moment after the write, so commits come in another order than writes.
          await tx.query('SELECT pg_sleep($1)', [((index * 37) % 11) / 1_000]);
          if (rollsBack(index)) throw new Error('rolled back on purpose');
        }),
      ),
    );
    writing = false;
    await reader;

    const committed = outcomes.flatMap((outcome, index) => (outcome.status === 'fulfilled' ? [index] : []));
    const failed = outcomes.flatMap((outcome, index) => (outcome.status === 'rejected' ? [[index, String(outcome.reason)]] : []));
    expect(failed.every(([index, reason]) => rollsBack(index as number) && (reason as string).includes('on purpose'))).toBe(true);
    expect(committed).toHaveLength(Array.from({ length: WRITERS }, (_, index) => index).filter((index) => !rollsBack(index)).length);

    // The feed: exactly 1..N, the writers' events those that committed, each tenant chained.
    const feed = await readWholeFeed(server.api);
    expect(feed.map((event) => event.seq)).toEqual(feed.map((_, index) => index + 1));
    expect(feed).toHaveLength(before + committed.length);
    const written = feed.slice(before).map((event) => Number(event.data.fields.writer));
    expect([...written].sort((a, b) => a - b)).toEqual(committed);
    expectChained(feed);
    expect((await database.db.query<{ last_seq: number }>("SELECT last_seq FROM change_event_heads WHERE scope = 'global'"))[0]!.last_seq).toBe(
      feed.length,
    );

    // What the reader was given, page after page: each page starts right after the last event
    // it had, so nothing was skipped and nothing appeared later below what it had seen.
    const read = pages.flat();
    expect(read.map((event) => event.seq)).toEqual(feed.slice(before).map((event) => event.seq));
    expect(read).toEqual(feed.slice(before));
    // It did read while the writers ran, not only at the end.
    expect(pages.filter((page) => page.length > 0).length).toBeGreaterThan(3);
  });
});
