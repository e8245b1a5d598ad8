// validateGenerate: each client-facing rejection code for the mistakes clients make, and the normalized request
// (every default resolved) that a valid frame becomes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RejectCode } from '../../core/errors';
import { MODELS } from '../../core/models';
import {
  DEADLINE_MAX_MS,
  DEADLINE_MIN_MS,
  MAX_IMAGES_PER_REQUEST,
  PROMPT_MAX_CHARS,
  validateGenerate,
  type RequestContext,
} from '../../core/request';

const ctx: RequestContext = {
  userId: 'user-1',
  region: 'us-west',
  now: 1_700_000_000_000,
  newRequestId: () => 'generated-id',
  newSeed: () => 1234,
};
const valid = {
  type: 'generate',
  prompt: 'a lighthouse at dusk',
  model: 'sdxl',
  tier: 'fast',
  width: 1024,
  height: 768,
};

function rejects(frame: unknown, code: RejectCode, field?: string): void {
  const result = validateGenerate(frame, ctx);
  assert.equal(result.ok, false, `expected ${code}`);
  if (result.ok) return;
  assert.equal(result.problem.code, code, result.problem.message);
  assert.ok(result.problem.message.length > 0);
  if (field)
    assert.ok(
      result.problem.details && field in result.problem.details,
      `details name ${field}: ${JSON.stringify(result.problem.details)}`,
    );
}

describe('validateGenerate', () => {
  test('a minimal valid frame gets every default filled in', () => {
    const result = validateGenerate({ ...valid, prompt: '  a lighthouse at dusk  ' }, ctx);
    assert.ok(result.ok);
    assert.deepEqual(result.value, {
      requestId: 'generated-id',
      userId: 'user-1',
      prompt: 'a lighthouse at dusk',
      negativePrompt: '',
      model: 'sdxl',
      tier: 'fast',
      width: 1024,
      height: 768,
      steps: MODELS.sdxl.defaultSteps,
      seed: 1234,
      numImages: 1,
      guidanceScale: 7.5,
      loras: [],
      controlnets: [],
      region: 'us-west',
      submittedAt: ctx.now,
    });
  });

  test('client-provided fields are kept', () => {
    const result = validateGenerate(
      {
        ...valid,
        requestId: 'mine-1',
        seed: 0,
        steps: 50,
        numImages: 4,
        guidanceScale: 3,
        negativePrompt: 'blurry',
        loras: [{ name: 'ink' }],
        controlnets: [{ type: 'canny' }],
      },
      ctx,
    );
    assert.ok(result.ok);
    assert.equal(result.value.requestId, 'mine-1');
    assert.equal(result.value.seed, 0, 'seed 0 is a seed, not "no seed"');
    assert.deepEqual([result.value.steps, result.value.numImages, result.value.guidanceScale], [50, 4, 3]);
    assert.deepEqual(result.value.loras, [{ name: 'ink', weight: 1 }]);
    assert.deepEqual(result.value.controlnets, [{ type: 'canny', weight: 1 }]);
  });

  describe('deadlineMs', () => {
    test('a budget from acceptance becomes an absolute deadline on the gateway clock', () => {
      const result = validateGenerate({ ...valid, deadlineMs: 30_000 }, ctx);
      assert.ok(result.ok);
      assert.equal(result.value.deadlineAt, ctx.now + 30_000);
      assert.equal(result.value.submittedAt, ctx.now);
    });

    test('without one the request has no deadline field at all (the same workflow input as before)', () => {
      const result = validateGenerate(valid, ctx);
      assert.ok(result.ok);
      assert.equal('deadlineAt' in result.value, false);
    });

    test('the bounds themselves are valid', () => {
      for (const deadlineMs of [DEADLINE_MIN_MS, DEADLINE_MAX_MS]) {
        const result = validateGenerate({ ...valid, deadlineMs }, ctx);
        assert.equal(result.ok && result.value.deadlineAt, ctx.now + deadlineMs);
      }
    });

    for (const [name, deadlineMs] of [
      ['under a second', DEADLINE_MIN_MS - 1],
      ['zero', 0],
      ['negative', -5000],
      ['over a day', DEADLINE_MAX_MS + 1],
      ['an epoch time instead of a budget', 1_700_000_060_000],
      ['not an integer', 1500.5],
      ['a string', '30000'],
      ['null', null],
    ] as const) {
      test(`${name} is INVALID_REQUEST naming deadlineMs`, () =>
        rejects({ ...valid, deadlineMs }, 'INVALID_REQUEST', 'deadlineMs'));
    }
  });

  describe('INVALID_REQUEST', () => {
    test('not an object', () => rejects('generate please', 'INVALID_REQUEST', '(frame)'));
    test('a missing field', () => rejects({ ...valid, width: undefined }, 'INVALID_REQUEST', 'width'));
    test('a field of the wrong type', () => rejects({ ...valid, width: '1024' }, 'INVALID_REQUEST', 'width'));
    test('a non-integer size', () => rejects({ ...valid, height: 767.5 }, 'INVALID_REQUEST', 'height'));
    test('an unknown field', () => rejects({ ...valid, sampler: 'euler' }, 'INVALID_REQUEST'));
    test('a requestId with spaces', () =>
      rejects({ ...valid, requestId: 'my request' }, 'INVALID_REQUEST', 'requestId'));
    test('too many images', () =>
      rejects({ ...valid, numImages: MAX_IMAGES_PER_REQUEST + 1 }, 'INVALID_REQUEST', 'numImages'));
    test('a seed above 2^32-1', () => rejects({ ...valid, seed: 2 ** 32 }, 'INVALID_REQUEST', 'seed'));
    test('more steps than the model allows', () =>
      rejects({ ...valid, steps: MODELS.sdxl.maxSteps + 1 }, 'INVALID_REQUEST', 'steps'));
    test('adapters on a model without adapter support', () =>
      rejects({ ...valid, model: 'tiny-sd', width: 64, height: 64, loras: [{ name: 'ink' }] }, 'INVALID_REQUEST'));
    test('a LoRA weight out of range', () =>
      rejects({ ...valid, loras: [{ name: 'ink', weight: 5 }] }, 'INVALID_REQUEST', 'loras.0.weight'));
  });

  test('UNKNOWN_MODEL', () => rejects({ ...valid, model: 'midjourney-v6' }, 'UNKNOWN_MODEL'));
  test('UNKNOWN_MODEL does not accept prototype keys', () =>
    rejects({ ...valid, model: 'constructor' }, 'UNKNOWN_MODEL'));
  test('UNKNOWN_TIER', () => rejects({ ...valid, tier: 'premium' }, 'UNKNOWN_TIER'));

  describe('INVALID_SIZE', () => {
    test('not a multiple of 8', () => rejects({ ...valid, width: 1020 }, 'INVALID_SIZE', 'width'));
    test('below the model minimum', () =>
      rejects({ ...valid, height: MODELS.sdxl.minSize - 8 }, 'INVALID_SIZE', 'height'));
    test('above the model maximum', () =>
      rejects({ ...valid, model: 'sdxl-turbo', width: 4096 }, 'INVALID_SIZE', 'width'));
    test('the bounds themselves are valid', () => {
      assert.ok(validateGenerate({ ...valid, width: MODELS.sdxl.minSize, height: MODELS.sdxl.maxSize }, ctx).ok);
    });
  });

  describe('INVALID_PROMPT', () => {
    test('empty', () => rejects({ ...valid, prompt: '' }, 'INVALID_PROMPT'));
    test('only whitespace', () => rejects({ ...valid, prompt: ' \n\t ' }, 'INVALID_PROMPT'));
    test('too long', () => rejects({ ...valid, prompt: 'x'.repeat(PROMPT_MAX_CHARS + 1) }, 'INVALID_PROMPT'));
    test('exactly the limit is fine', () =>
      assert.ok(validateGenerate({ ...valid, prompt: 'x'.repeat(PROMPT_MAX_CHARS) }, ctx).ok));
  });
});
