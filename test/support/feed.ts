// Reading the change feed as a consumer would, and the checks a consumer makes of what it read.
import { expect } from 'vitest';
import type { ChangeEvent } from '../../src/domain/change-event.js';
import type { Client } from './http.js';

export type Page = { items: ChangeEvent[]; next_cursor: string; has_more: boolean };

/**
 * Every event the feed answers to `query` (`&types=...`) after `after` (from the oldest kept when
 * null), following next_cursor until has_more is false.
 */
export async function readWholeFeed(api: Client, query = '', after: number | null = null): Promise<ChangeEvent[]> {
  const events: ChangeEvent[] = [];
  let cursor: string | null = after === null ? null : String(after);
  for (let page = 0; page < 1_000; page += 1) {
    const answer: { status: number; body: Page; text: string } = await api.get<Page>(
      `/v1/events?limit=500${query}${cursor === null ? '' : `&after=${cursor}`}`,
    );
    if (answer.status !== 200) throw new Error(`GET /v1/events: ${answer.status} ${answer.text}`);
    events.push(...answer.body.items);
    cursor = answer.body.next_cursor;
    if (!answer.body.has_more) return events;
  }
  throw new Error('the feed never said has_more=false');
}

/** Checks each tenant's events name the one before (null for its first) in seq order. */
export function expectChained(events: readonly ChangeEvent[]): void {
  const last = new Map<string, number>();
  for (const event of events) {
    if (event.tenant_id === null) continue;
    expect({ seq: event.seq, prev: event.tenant_prev_seq }).toEqual({ seq: event.seq, prev: last.get(event.tenant_id) ?? null });
    last.set(event.tenant_id, event.seq);
  }
}
