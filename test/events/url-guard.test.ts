// The URL guard's address classes and allowlist, the retry schedule and secrets of
// domain/webhook.ts, and a signing secret in a log line: the rules under the webhook routes and
// the dispatcher, without a server.
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { afterFailure, newWebhookSecret, RETRY_SCHEDULE_MS, urlProblem } from '../../src/domain/webhook.js';
import { classifyAddress, createUrlGuard, parseAllowlist } from '../../src/events/url-guard.js';
import { signatureHeaders } from '../../src/events/webhook-sender.js';
import { REDACTED, redactShapes } from '../../src/observability/redact.js';

describe('classifyAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['10.255.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.0.1', 'private'],
    ['169.254.169.254', 'link_local'],
    ['0.0.0.0', 'unspecified'],
    ['100.127.255.254', 'shared'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fd00::1', 'private'],
    ['fe80::1', 'link_local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'link_local'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::a00:1', 'private'],
    ['2002:c0a8:101::1', 'private'],
    // SIIT, local-use NAT64 (the metadata address inside), Teredo, discard-only.
    ['::ffff:0:7f00:1', 'loopback'],
    ['64:ff9b:1::a9fe:a9fe', 'link_local'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'],
    ['100::1', 'reserved'],
  ])('%s is %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });

  it.each(['8.8.8.8', '203.0.113.10', '172.32.0.1', '100.128.0.1', '2001:db8::1', '::ffff:8.8.8.8', '2606:4700::1111'])('%s may be reached', (address) => {
    expect(classifyAddress(address)).toBeNull();
  });
});

describe('the allowlist', () => {
  it('lets through the addresses, ranges and names it lists, and nothing else', () => {
    const guard = createUrlGuard(parseAllowlist(['127.0.0.1', '10.1.0.0/16', 'hooks.internal', '[fd00::5]']));
    expect(guard.refusal('127.0.0.1', '127.0.0.1')).toBeNull();
    expect(guard.refusal('::ffff:127.0.0.1', '::ffff:127.0.0.1')).toBeNull();
    expect(guard.refusal('127.0.0.2', '127.0.0.2')?.kind).toBe('loopback');
    expect(guard.refusal('10.1.200.3', '10.1.200.3')).toBeNull();
    expect(guard.refusal('10.2.0.1', '10.2.0.1')?.kind).toBe('private');
    expect(guard.refusal('hooks.internal', '10.9.9.9')).toBeNull();
    expect(guard.refusal('other.internal', '10.9.9.9')?.kind).toBe('private');
    expect(guard.refusal('fd00::5', 'fd00::5')).toBeNull();
    expect(guard.refusal('fd00::6', 'fd00::6')?.kind).toBe('private');
  });

  it.each(['10.0.0.0/33', '10.0.0.0/8/1', 'not a host', 'fd00::/129', '*.example.com', '1.2.3.4/x'])('refuses the entry %s', (entry) => {
    expect(() => parseAllowlist([entry])).toThrow(/WEBHOOK_ALLOW_PRIVATE/);
  });
});

describe('webhook rules', () => {
  it('retries by the schedule, then gives up', () => {
    expect(RETRY_SCHEDULE_MS).toHaveLength(8);
    expect(afterFailure(RETRY_SCHEDULE_MS, 1)).toEqual({ retryInMs: 5_000 });
    expect(afterFailure(RETRY_SCHEDULE_MS, 7)).toEqual({ retryInMs: 36_000_000 });
    expect(afterFailure(RETRY_SCHEDULE_MS, 8)).toBe('dead');
  });

  it('makes secrets the standardwebhooks package takes, all different', () => {
    const secrets = new Set(Array.from({ length: 20 }, newWebhookSecret));
    expect(secrets.size).toBe(20);
    const [secret] = secrets;
    const headers = signatureHeaders({ id: 'msg_1', payload: '{"a":1}', secrets: [secret!], timestamp: new Date() });
    expect(new Webhook(secret!).verify('{"a":1}', headers)).toEqual({ a: 1 });
  });

  it.each([
    ['https://hooks.example.com/in', null],
    ['http://203.0.113.1:8080/x?y=1', null],
    ['ws://hooks.example.com/', 'must be http or https'],
    ['https://a:b@hooks.example.com/', 'must not carry a user name or password'],
    ['https://hooks.example.com/#f', 'must not have a fragment'],
    ['/relative', 'must be an absolute URL'],
  ])('%s: %s', (url, problem) => {
    expect(urlProblem(url)).toBe(problem);
  });

  it('a signing secret in a log line is redacted', () => {
    const secret = newWebhookSecret();
    expect(redactShapes(`rotated to ${secret} today`)).toBe(`rotated to ${REDACTED} today`);
  });
});
