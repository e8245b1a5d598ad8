// The gateway's admission steps without Redis (gateway/admission.ts), in their documented order: plan, re-attach,
// rate, in-flight caps (the user's and the deployment's, with retryAfterMs from the drain rate), breakers; and the
// in-flight place given back when a later step refuses.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PLAN, type Plan } from '../../core/plans';
import type { GenerationRequest } from '../../core/request';
import { Admission, type AdmissionDeps } from '../../gateway/admission';
import { cachedFor } from '../../gateway/async';
import type { LiveAdmission } from '../../runtime/live-requests';
import { createLogger } from '../../runtime/logger';

const log = createLogger('test', {}, 'silent');
const request = (over: Partial<GenerationRequest> = {}): GenerationRequest =>
  ({ requestId: 'r1', userId: 'u1', model: 'sdxl', tier: 'fast', ...over }) as GenerationRequest;

interface Answers {
  readonly liveAnswer?: LiveAdmission;
  readonly accepted?: boolean;
  readonly drain?: number;
}

function harness(answers: Answers = {}, over: Partial<AdmissionDeps> = {}) {
  const calls: string[] = [];
  const deps: AdmissionDeps = {
    rate: {
      consume: (_user, perMinute) => (calls.push(`rate ${perMinute}`), Promise.resolve({ allowed: true })),
    },
    live: {
      admit: () => (calls.push('admit'), Promise.resolve(answers.liveAnswer ?? { admitted: true, userLive: 1 })),
      release: (id) => (calls.push(`release ${id}`), Promise.resolve()),
      total: () => Promise.resolve(1000),
    },
    deploymentCap: 10_000,
    eventLog: { newestSeq: () => Promise.resolve(answers.accepted ? 4 : undefined) },
    breakers: { breakerRefusal: () => Promise.resolve(undefined) },
    drainPerSecond: () => Promise.resolve(answers.drain),
    log,
    ...over,
  };
  return { admission: new Admission(deps), calls };
}

describe('admission', () => {
  test('a tier outside the plan is refused first, naming the tiers it allows', async () => {
    const { admission, calls } = harness();
    const decision = await admission.admit(request({ tier: 'turbo' }), DEFAULT_PLAN);
    assert.equal(decision.admitted, false);
    assert.equal(!decision.admitted && decision.code, 'TIER_NOT_ALLOWED');
    assert.deepEqual(!decision.admitted && decision.details, { tier: 'allowed: fast, relax' });
    assert.deepEqual(calls, [], 'nothing charged');
  });

  test('a re-attach to an accepted request is free: no rate, no cap, no breaker', async () => {
    const { admission, calls } = harness(
      { accepted: true },
      {
        breakers: { breakerRefusal: () => assert.fail('breakers are not consulted') },
      },
    );
    const decision = await admission.admit(request(), DEFAULT_PLAN);
    assert.deepEqual(decision.admitted && decision.reattach, true);
    assert.deepEqual(calls, []);
  });

  test("the plan's rate is charged, and a spent budget answers RATE_LIMITED with the limiter's retryAfterMs", async () => {
    const plan: Plan = { ...DEFAULT_PLAN, ratePerMinute: 7 };
    const { admission, calls } = harness(
      {},
      {
        rate: {
          consume: (_u, n) => (calls.push(`rate ${n}`), Promise.resolve({ allowed: false, retryAfterMs: 4200 })),
        },
      },
    );
    const decision = await admission.admit(request(), plan);
    assert.deepEqual(!decision.admitted && [decision.code, decision.retryAfterMs], ['RATE_LIMITED', 4200]);
    assert.deepEqual(calls, ['rate 7']);
  });

  test("the user's in-flight cap answers IN_FLIGHT_LIMIT with a wait from Little's law", async () => {
    // 1000 live requests ending at 10/s stay 100 s each; with 50 of the user's in flight, one ends in about 2 s.
    const { admission } = harness({ liveAnswer: { admitted: false, over: 'user', count: 50 }, drain: 10 });
    const decision = await admission.admit(request(), DEFAULT_PLAN);
    assert.deepEqual(!decision.admitted && [decision.code, decision.retryAfterMs], ['IN_FLIGHT_LIMIT', 2000]);
  });

  test("the deployment's cap answers OVERLOADED, retry after about one request's drain time", async () => {
    const { admission } = harness({ liveAnswer: { admitted: false, over: 'deployment', count: 10_000 }, drain: 4 });
    const decision = await admission.admit(request(), DEFAULT_PLAN);
    assert.deepEqual(!decision.admitted && [decision.code, decision.retryAfterMs], ['OVERLOADED', 500]);
    const unknownDrain = harness({ liveAnswer: { admitted: false, over: 'deployment', count: 10_000 } });
    const later = await unknownDrain.admission.admit(request(), DEFAULT_PLAN);
    assert.equal(!later.admitted && later.retryAfterMs, 60_000, 'no drain measured yet: the longest wait');
  });

  test('a breaker refusal gives the in-flight place back', async () => {
    const { admission, calls } = harness(
      {},
      {
        breakers: {
          breakerRefusal: () => Promise.resolve({ code: 'MODEL_CIRCUIT_OPEN', message: 'open', retryAfterMs: 9000 }),
        },
      },
    );
    const decision = await admission.admit(request(), DEFAULT_PLAN);
    assert.deepEqual(!decision.admitted && decision.code, 'MODEL_CIRCUIT_OPEN');
    assert.deepEqual(calls, ['rate 100', 'admit', 'release gen:u1:r1']);
  });

  test('stores that cannot be read let the request through', async () => {
    const { admission } = harness(
      {},
      {
        rate: { consume: () => Promise.reject(new Error('redis timeout')) },
        live: {
          admit: () => Promise.reject(new Error('redis timeout')),
          release: () => Promise.resolve(),
          total: () => Promise.resolve(0),
        },
        eventLog: { newestSeq: () => Promise.reject(new Error('redis timeout')) },
      },
    );
    const decision = await admission.admit(request(), DEFAULT_PLAN);
    assert.deepEqual(decision.admitted && decision.reattach, false);
  });

  test('readings shared by requests are made once per key and period', async () => {
    let reads = 0;
    const read = cachedFor(60_000, (key: string) => Promise.resolve(`${key}:${++reads}`));
    assert.deepEqual(await Promise.all([read('a'), read('a'), read('b'), read('a')]), ['a:1', 'a:1', 'b:2', 'a:1']);
    assert.equal(reads, 2);
  });
});
