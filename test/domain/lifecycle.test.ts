import { describe, expect, it } from 'vitest';
import {
  TENANT_STATUSES,
  TRIAL_DAYS,
  initialState,
  nextStatus,
  trialEndsAfter,
  type LifecycleAction,
  type TenantStatus,
} from '../../src/domain/lifecycle.js';

describe('tenant lifecycle', () => {
  // The whole table, written out: every (action, status) pair and where it leads.
  const expected: Record<LifecycleAction, Record<TenantStatus, TenantStatus | null>> = {
    activate: { demo: null, trial: 'active', active: null, frozen: 'active', archived: null },
    cancel: { demo: null, trial: 'frozen', active: 'frozen', frozen: null, archived: null },
    archive: { demo: null, trial: null, active: null, frozen: 'archived', archived: null },
  };

  for (const action of ['activate', 'cancel', 'archive'] as const) {
    it.each(TENANT_STATUSES)(`${action} from %s`, (status) => {
      expect(nextStatus(action, status)).toBe(expected[action][status]);
    });
  }

  it('starts a customer in a trial that ends TRIAL_DAYS later, and a demo in demo', () => {
    const now = new Date('2026-11-27T10:00:00.000Z');
    expect(TRIAL_DAYS).toBe(14);
    expect(initialState('customer', now)).toEqual({ status: 'trial', trialEndsAt: new Date('2026-12-11T10:00:00.000Z') });
    expect(initialState('demo', now)).toEqual({ status: 'demo', trialEndsAt: null });
  });

  it('clears the trial end once the tenant leaves the trial', () => {
    const end = new Date('2026-12-11T10:00:00.000Z');
    expect(trialEndsAfter('active', end)).toBeNull();
    expect(trialEndsAfter('frozen', end)).toBeNull();
    expect(trialEndsAfter('trial', end)).toBe(end);
  });
});
