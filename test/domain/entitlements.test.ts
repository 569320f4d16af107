import { describe, expect, it } from 'vitest';
import {
  catalogState,
  daysLeft,
  effectiveStatus,
  isUsable,
  trialEnd,
  usableProducts,
  type EntitlementFacts,
} from '../../src/domain/entitlements.js';
import { TENANT_STATUSES } from '../../src/domain/lifecycle.js';

const NOW = new Date('2026-11-27T12:00:00.000Z');
const at = (offsetMs: number) => new Date(NOW.getTime() + offsetMs);
const DAY = 86_400_000;

const trial = (endsAt: Date, product = 'risk'): EntitlementFacts => ({ product, status: 'trial', trial_ends_at: endsAt });
const plain = (status: EntitlementFacts['status'], product = 'risk'): EntitlementFacts => ({ product, status, trial_ends_at: null });

describe('entitlement status at read time', () => {
  it('reads a trial as expired from the very millisecond it ends', () => {
    expect(effectiveStatus(trial(at(1)), NOW)).toBe('trial');
    expect(effectiveStatus(trial(at(0)), NOW)).toBe('expired');
    expect(effectiveStatus(trial(at(-1)), NOW)).toBe('expired');
  });

  it('passes the other statuses through', () => {
    for (const status of ['active', 'requested', 'revoked'] as const) expect(effectiveStatus(plain(status), NOW)).toBe(status);
  });

  it('counts whole days left, rounded up, only for a running trial', () => {
    expect(daysLeft(trial(at(14 * DAY)), NOW)).toBe(14);
    expect(daysLeft(trial(at(13 * DAY + 1)), NOW)).toBe(14);
    expect(daysLeft(trial(at(3 * DAY)), NOW)).toBe(3);
    expect(daysLeft(trial(at(1)), NOW)).toBe(1);
    expect(daysLeft(trial(at(0)), NOW)).toBeNull();
    expect(daysLeft(plain('active'), NOW)).toBeNull();
  });

  it('computes the trial end from its length in days', () => {
    expect(trialEnd(NOW, 14)).toEqual(new Date('2026-12-11T12:00:00.000Z'));
  });
});

describe('what a tenant may use now', () => {
  const entitlements = [
    plain('active', 'compliance'),
    trial(at(DAY), 'risk'),
    trial(at(-DAY), 'training'),
    plain('requested', 'api'),
    plain('revoked', 'portal'),
  ];

  it('is active entitlements and running trials, sorted', () => {
    expect(usableProducts('active', entitlements, NOW)).toEqual(['compliance', 'risk']);
    expect(entitlements.filter((e) => isUsable(e, NOW)).map((e) => e.product)).toEqual(['compliance', 'risk']);
  });

  it('is nothing while the tenant is frozen or archived, whatever its rows say', () => {
    for (const status of TENANT_STATUSES) {
      const expected = status === 'frozen' || status === 'archived' ? [] : ['compliance', 'risk'];
      expect(usableProducts(status, entitlements, NOW)).toEqual(expected);
    }
  });
});

describe('catalog state', () => {
  it('maps each entitlement to what the portal renders', () => {
    expect(catalogState(undefined, NOW)).toBeNull();
    expect(catalogState(plain('active'), NOW)).toBe('entitled');
    expect(catalogState(trial(at(DAY)), NOW)).toBe('trial');
    expect(catalogState(trial(at(-DAY)), NOW)).toBe('expired');
    expect(catalogState(plain('requested'), NOW)).toBe('requested');
    expect(catalogState(plain('revoked'), NOW)).toBeNull();
  });
});
