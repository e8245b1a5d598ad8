// The fairness key and weight of a request's GPU work (core/fairness.ts): what Temporal accepts, always, since a key
// or weight it refuses would fail the workflow task that schedules the attempt, again on every retry.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_FAIRNESS_WEIGHT,
  FAIRNESS_KEY_MAX_BYTES,
  FAIRNESS_WEIGHT_MAX,
  FAIRNESS_WEIGHT_MIN,
  fairnessKeyOf,
  fairnessWeightOf,
  requestFairness,
} from '../../core/fairness';

const utf8Length = (text: string): number => Buffer.byteLength(text, 'utf8');

describe('fairness between users (core/fairness.ts)', () => {
  test('the key is the user id, unchanged when it fits: every id the gateway accepts does', () => {
    assert.equal(fairnessKeyOf('user-1'), 'user-1');
    const longest = `u${'x'.repeat(63)}`;
    assert.equal(fairnessKeyOf(longest), longest);
  });

  test('a longer id is shortened to fit, keeping apart two ids that share their first 64 bytes', () => {
    const prefix = 'tenant.'.repeat(10);
    const [a, b] = [fairnessKeyOf(`${prefix}alice`), fairnessKeyOf(`${prefix}bob`)];
    for (const key of [a, b]) {
      assert.ok(utf8Length(key) <= FAIRNESS_KEY_MAX_BYTES, `${key} has ${utf8Length(key)} bytes`);
      assert.ok(key.startsWith('tenant.tenant.'), key);
    }
    assert.notEqual(a, b);
    assert.equal(fairnessKeyOf(`${prefix}alice`), a, 'the same user always gets the same key (replay)');
  });

  test('multi-byte characters count as their UTF-8 bytes, and are never cut in half', () => {
    const id = 'é'.repeat(40); // 80 bytes in 40 characters
    const key = fairnessKeyOf(id);
    assert.ok(utf8Length(key) <= FAIRNESS_KEY_MAX_BYTES);
    assert.ok(!key.includes('\uFFFD'));
    assert.equal(fairnessKeyOf('é'.repeat(32)), 'é'.repeat(32), '64 bytes fit');
  });

  test('the weight is the plan weight, within what Temporal applies; missing or meaningless gives 1', () => {
    assert.equal(fairnessWeightOf(2.5), 2.5);
    assert.equal(fairnessWeightOf(5000), FAIRNESS_WEIGHT_MAX);
    assert.equal(fairnessWeightOf(0.00001), FAIRNESS_WEIGHT_MIN);
    for (const meaningless of [undefined, 0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.equal(fairnessWeightOf(meaningless), DEFAULT_FAIRNESS_WEIGHT, String(meaningless));
    }
  });

  test("a request's fairness: its user, weighted by the request's plan weight", () => {
    assert.deepEqual(requestFairness({ userId: 'user-1' }), { fairnessKey: 'user-1', fairnessWeight: 1 });
    assert.deepEqual(requestFairness({ userId: 'user-2', fairnessWeight: 3 }), {
      fairnessKey: 'user-2',
      fairnessWeight: 3,
    });
  });
});
