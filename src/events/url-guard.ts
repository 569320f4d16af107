// Where webhooks may not go: the registry's own network. An endpoint URL is an operator's way to
// make the registry send requests, so a URL whose host is or resolves to a loopback, private,
// link-local (the cloud metadata service at 169.254.169.254 among them), unspecified, CGNAT,
// multicast or reserved address is refused, in IPv6 and IPv4-in-IPv6 spellings too, unless
// WEBHOOK_ALLOW_PRIVATE names its host, its address or a range holding it.
//
// Checked twice: when an endpoint is saved (a clear 400) and when each delivery connects. The
// second check is the one that holds: a name can resolve elsewhere by the time of delivery (DNS
// rebinding), so deliveries connect through lookupFor(), which hands the socket only addresses
// it has checked. A literal address in the URL needs no lookup; its caller checks it directly.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, isIPv4 } from 'node:net';

/** Why an address may not be reached; null when it may. */
export type AddressClass = 'loopback' | 'private' | 'link_local' | 'unspecified' | 'shared' | 'multicast' | 'reserved';

const RANGES: Array<[string, number, 'ipv4' | 'ipv6', AddressClass]> = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'shared'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link_local'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.0.0.0', 24, 'ipv4', 'reserved'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['198.18.0.0', 15, 'ipv4', 'reserved'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  // 240/4 is reserved, and holds the broadcast address.
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['fc00::', 7, 'ipv6', 'private'],
  ['fe80::', 10, 'ipv6', 'link_local'],
  // Site-local: deprecated, still routed inside some networks.
  ['fec0::', 10, 'ipv6', 'private'],
  ['ff00::', 8, 'ipv6', 'multicast'],
  // Discard-only, and Teredo (a tunnel whose far end is an IPv4 host the guard cannot see).
  ['100::', 64, 'ipv6', 'reserved'],
  ['2001::', 32, 'ipv6', 'reserved'],
];

const CLASSES = new Map<AddressClass, BlockList>();
for (const [network, prefix, family, kind] of RANGES) {
  const list = CLASSES.get(kind) ?? new BlockList();
  list.addSubnet(network, prefix, family);
  CLASSES.set(kind, list);
}

/** The 16 bytes of an IPv6 address in any of its spellings (:: and a trailing dotted quad included). */
function ipv6Bytes(address: string): number[] {
  let text = address.split('%')[0]!;
  const tail: number[] = [];
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    tail.push(...quad[1]!.split('.').map(Number));
    text = `${text.slice(0, -quad[1]!.length)}0:0`;
  }
  const [head, rest] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const front = groups(head);
  const back = rest === undefined ? [] : groups(rest);
  const words = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
  const bytes = words.flatMap((word) => [word >> 8, word & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/**
 * The IPv4 address an IPv6 one carries, where it carries one that reaches an IPv4 host: mapped
 * (::ffff:a.b.c.d), compatible (::a.b.c.d), SIIT (::ffff:0:a.b.c.d), NAT64 (64:ff9b::a.b.c.d and
 * the local-use 64:ff9b:1::/48, whose translator may sit inside our network) and 6to4
 * (2002:a.b:c.d::).
 */
function embeddedIpv4(address: string): string | null {
  const bytes = ipv6Bytes(address);
  const zeros = (from: number, to: number) => bytes.slice(from, to).every((byte) => byte === 0);
  const quad = (at: number) => bytes.slice(at, at + 4).join('.');
  if (zeros(0, 10) && ((bytes[10] === 0xff && bytes[11] === 0xff) || (bytes[10] === 0 && bytes[11] === 0))) return quad(12);
  // SIIT: ::ffff:0:a.b.c.d.
  if (zeros(0, 8) && bytes[8] === 0xff && bytes[9] === 0xff && zeros(10, 12)) return quad(12);
  if (bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zeros(4, 12)) return quad(12);
  // Local-use NAT64: the IPv4 address in the last four bytes (a /96 translator prefix inside the /48).
  if (bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && bytes[4] === 0x00 && bytes[5] === 0x01) return quad(12);
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return quad(2);
  return null;
}

/** Which forbidden class the address is in; null for an address anyone may reach. */
export function classifyAddress(address: string): AddressClass | null {
  const family = isIP(address);
  if (family === 0) return 'reserved';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [kind, list] of CLASSES) if (list.check(address, type)) return kind;
  if (family === 6) {
    const inner = embeddedIpv4(address);
    if (inner !== null) return classifyAddress(inner);
  }
  return null;
}

const RESOLVE_TIMEOUT_MS = 5_000;

/** WEBHOOK_ALLOW_PRIVATE, read: hosts by name, and addresses and ranges. */
export interface Allowlist {
  hosts: ReadonlySet<string>;
  ranges: BlockList;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/;

/** Reads the allowlist; an entry that is neither a host name, an address nor a CIDR range throws. */
export function parseAllowlist(entries: readonly string[]): Allowlist {
  const hosts = new Set<string>();
  const ranges = new BlockList();
  for (const raw of entries) {
    const entry = raw.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
    const [network, prefix, extra] = entry.split('/');
    const family = isIP(network ?? '');
    if (prefix !== undefined) {
      const bits = Number(prefix);
      const max = family === 4 ? 32 : 128;
      if (family === 0 || extra !== undefined || !/^\d{1,3}$/.test(prefix) || bits > max) {
        throw new Error(`WEBHOOK_ALLOW_PRIVATE: "${raw}" is not a CIDR range`);
      }
      ranges.addSubnet(network!, bits, family === 4 ? 'ipv4' : 'ipv6');
    } else if (family !== 0) {
      ranges.addAddress(entry, family === 4 ? 'ipv4' : 'ipv6');
    } else if (HOST_NAME.test(entry)) {
      hosts.add(entry.replace(/\.$/, ''));
    } else {
      throw new Error(`WEBHOOK_ALLOW_PRIVATE: "${raw}" is not a host name, an address or a CIDR range`);
    }
  }
  return { hosts, ranges };
}

/** An address a URL's host is or resolves to, refused, and why. */
export class AddressRefused extends Error {
  readonly code = 'ERR_WEBHOOK_ADDRESS_REFUSED';
  constructor(
    readonly address: string,
    readonly kind: AddressClass,
  ) {
    super(`${address} is a ${kind.replace('_', '-')} address`);
    this.name = 'AddressRefused';
  }
}

/** The host of a URL as lookups and the allowlist take it: no IPv6 brackets, no trailing dot, lower case. */
export const hostOf = (url: URL): string => url.hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();

export interface UrlGuard {
  /** The refusal of one address of `host`, or null when it may be reached. */
  refusal(host: string, address: string): AddressRefused | null;
  /**
   * Checks the URL's host (resolving a name): null when every address it has may be reached.
   * A name that does not resolve is refused as `unresolvable`.
   */
  check(url: URL): Promise<AddressRefused | 'unresolvable' | null>;
  /** A lookup for node:http(s) request() that answers only addresses this guard allows. */
  lookup: typeof dnsLookup;
}

export function createUrlGuard(allow: Allowlist): UrlGuard {
  const refusal = (host: string, address: string): AddressRefused | null => {
    const kind = classifyAddress(address);
    if (kind === null || allow.hosts.has(host)) return null;
    const family = isIPv4(address) ? 'ipv4' : 'ipv6';
    if (allow.ranges.check(address, family)) return null;
    // A mapped address is allowed as its IPv4 self would be.
    if (family === 'ipv6') {
      const inner = embeddedIpv4(address);
      if (inner !== null && allow.ranges.check(inner, 'ipv4')) return null;
    }
    return new AddressRefused(address, kind);
  };

  // A check answers a request: a resolver that does not answer in this long counts as none.
  const resolveAll = (host: string) =>
    new Promise<LookupAddress[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('lookup timed out')), RESOLVE_TIMEOUT_MS);
      dnsLookup(host, { all: true }, (error, addresses) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(addresses);
      });
    });

  const lookup = ((hostname: string, options: unknown, callback: unknown) => {
    const done = (typeof options === 'function' ? options : callback) as (
      error: NodeJS.ErrnoException | null,
      address?: string | LookupAddress[],
      family?: number,
    ) => void;
    const opts = (typeof options === 'object' && options !== null ? options : {}) as { family?: number; all?: boolean; hints?: number };
    const host = hostname.replace(/\.$/, '').toLowerCase();
    dnsLookup(hostname, { all: true, family: opts.family ?? 0, ...(opts.hints ? { hints: opts.hints } : {}) }, (error, addresses) => {
      if (error) return done(error);
      // One refused address refuses the name: a rebinding answer mixes a public address with
      // the one it is after, and the socket may try any of them.
      for (const { address } of addresses) {
        const refused = refusal(host, address);
        if (refused) return done(refused);
      }
      if (opts.all) return done(null, addresses);
      const first = addresses[0]!;
      return done(null, first.address, first.family);
    });
  }) as typeof dnsLookup;

  return {
    refusal,
    async check(url) {
      const host = hostOf(url);
      if (isIP(host) !== 0) return refusal(host, host);
      let addresses: LookupAddress[];
      try {
        addresses = await resolveAll(host);
      } catch {
        return 'unresolvable';
      }
      for (const { address } of addresses) {
        const refused = refusal(host, address);
        if (refused) return refused;
      }
      return addresses.length === 0 ? 'unresolvable' : null;
    },
    lookup,
  };
}
