// The cache's name for a key: its SHA-256, so the key itself is never kept once its first
// verification is done. crypto.hash (Node 20.12+) hashes in one call without a Hash object; the
// fallback is the same digest on older releases.
import * as crypto from 'node:crypto';

type OneShot = (algorithm: string, data: string, encoding: 'hex') => string;
const oneShot = (crypto as unknown as { hash?: OneShot }).hash;

export const sha256Hex: (key: string) => string =
  typeof oneShot === 'function'
    ? (key) => oneShot('sha256', key, 'hex')
    : (key) => crypto.createHash('sha256').update(key).digest('hex');
