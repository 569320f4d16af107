import { describe, expect, it } from 'vitest';
import {
  catalogState,
  daysLeft,
  effectiveStatus,
  isUsable,
  trialEnd,
  trialRefusal,
  usableProducts,
  type EntitlementFacts,
  type TrialHistory,
} from '../../src/domain/entitlements.js';
import { TENANT_STATUSES } from '../../src/domain/lifecycle.js';
import { DAY_MS } from '../support/time.js';

const NOW = new Date('2026-11-27T12:00:00.000Z');
const at = (offsetMs: number) => new Date(NOW.getTime() + offsetMs);

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
    expect(daysLeft(trial(at(14 * DAY_MS)), NOW)).toBe(14);
    expect(daysLeft(trial(at(13 * DAY_MS + 1)), NOW)).toBe(14);
    expect(daysLeft(trial(at(3 * DAY_MS)), NOW)).toBe(3);
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
    trial(at(DAY_MS), 'risk'),
    trial(at(-DAY_MS), 'training'),
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
    expect(catalogState(trial(at(DAY_MS)), NOW)).toBe('trial');
    expect(catalogState(trial(at(-DAY_MS)), NOW)).toBe('expired');
    expect(catalogState(plain('requested'), NOW)).toBe('requested');
    expect(catalogState(plain('revoked'), NOW)).toBeNull();
  });
});

describe('whether a self-serve trial may start', () => {
  const history = (facts: Partial<TrialHistory>): TrialHistory => ({
    product: 'risk',
    status: 'requested',
    trial_ends_at: null,
    trial_started_at: null,
    revoked_at: null,
    ...facts,
  });

  it.each<[string, TrialHistory | undefined, string | null]>([
    ['no history', undefined, null],
    ['an open sales request', history({}), null],
    ['an active grant', history({ status: 'active' }), 'already_entitled'],
    ['a running trial', history({ status: 'trial', trial_started_at: at(-DAY_MS), trial_ends_at: at(DAY_MS) }), 'trial_used'],
    ['an expired trial', history({ status: 'trial', trial_started_at: at(-20 * DAY_MS), trial_ends_at: at(-DAY_MS) }), 'trial_used'],
    ['a revoked trial', history({ status: 'revoked', trial_started_at: at(-DAY_MS), trial_ends_at: at(DAY_MS), revoked_at: NOW }), 'trial_used'],
    ['a revoked grant', history({ status: 'revoked', revoked_at: at(-DAY_MS) }), 'product_revoked'],
    ['a sales request made after a revocation', history({ status: 'requested', revoked_at: at(-DAY_MS) }), 'product_revoked'],
    ['a grant after a revocation (which clears it)', history({ status: 'active', revoked_at: null }), 'already_entitled'],
  ])('%s', (_case, existing, refusal) => {
    expect(trialRefusal(existing, NOW)).toBe(refusal);
  });
});
