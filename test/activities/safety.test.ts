// The rules-v1 prompt screen and the checkPromptSafety activity: what it refuses (including common spellings meant
// to slip past a word list), what it must not refuse (words that merely contain a listed word, negative prompts),
// and how a refusal and an outage reach the workflow.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { SafetyVerdict } from '../../core/activities';
import { MemoryEventLog } from '../helpers/memory-event-log';
import { RulesPromptScreen, createSafetyActivities, normalizePrompt, type PromptScreen } from '../../activities/safety';

const screen = new RulesPromptScreen();

describe('rules-v1 prompt screen', () => {
  const refused: [string, string][] = [
    ['explicit porn of a celebrity', 'sexual-explicit'],
    ['P0RN0GRAPHIC poster', 'sexual-explicit'],
    ['a p.o.r.n scene', 'sexual-explicit'],
    ['n s f w photo of a woman', 'sexual-explicit'],
    ['$ex act on a beach', 'sexual-explicit'],
    ['a decapitated soldier, lots of gore', 'graphic-violence'],
    ['Dismembered body on the floor', 'graphic-violence'],
    ['naked child', 'sexual-minors'],
    ['a sexy schoolgirl', 'sexual-minors'],
    ['young girl, nude', 'sexual-minors'],
    ['person contemplating suicide', 'self-harm'],
  ];
  for (const [prompt, category] of refused) {
    test(`refuses ${JSON.stringify(prompt)} (${category})`, async () => {
      const result = await screen.screen(prompt);
      assert.equal(result.allowed, false);
      assert.ok(result.categories.includes(category), `categories: ${result.categories.join(', ')}`);
    });
  }

  const allowed = [
    'a lighthouse at dusk, oil painting',
    'Essex countryside in spring', // contains "sex" inside a word
    'a gorgeous sunset over the sea', // contains "gore" inside a word
    'children playing football in a park', // a minor term alone
    'a nude beige colour palette for a living room, minimalist', // a sexual term alone (not with a minor)
    'portrait of a man, 4k, 85mm, f/1.8, sharp focus!', // digits and punctuation stay harmless
    'the Scunthorpe United stadium at night',
  ];
  for (const prompt of allowed) {
    test(`allows ${JSON.stringify(prompt)}`, async () => {
      assert.deepEqual(await screen.screen(prompt), { allowed: true, categories: [] });
    });
  }

  test('normalization folds case, accents, leetspeak inside words and spaced-out letters', () => {
    assert.equal(normalizePrompt('  Crème   BRÛLÉE!! '), 'creme brulee');
    assert.equal(normalizePrompt('g0r3 and bl00d'), 'gore and blood');
    assert.equal(normalizePrompt('n u d e, 1024 x 768'), 'nude 1024 x 768');
    assert.equal(normalizePrompt('3 cats'), '3 cats');
  });
});

describe('checkPromptSafety activity', () => {
  const LOG_ID = 'gen:user-1:req-1';
  const env = new MockActivityEnvironment(
    { activityType: 'checkPromptSafety', workflowExecution: { workflowId: LOG_ID, runId: 'run-1' } },
    { logger: new DefaultLogger('ERROR') },
  );
  const eventLog = new MemoryEventLog();
  const input = (prompt: string, negativePrompt = '') => ({ requestId: 'req-1', prompt, negativePrompt });

  test('allows a safe prompt and names the screen for the audit trail', async () => {
    const { checkPromptSafety } = createSafetyActivities({ screen, eventLog });
    assert.deepEqual(await env.run(checkPromptSafety, input('a red bicycle')), { allowed: true, screen: 'rules-v1' });
  });

  test('tells the client the request is in its safety check, once however often it runs', async () => {
    const { checkPromptSafety } = createSafetyActivities({ screen, eventLog });
    await env.run(checkPromptSafety, input('a red bicycle'));
    await env.run(checkPromptSafety, input('a red bicycle'));
    assert.deepEqual(eventLog.events(LOG_ID), [{ type: 'status', status: 'safety_check' }]);
  });

  test('does not screen the negative prompt, where users list what they do not want', async () => {
    const { checkPromptSafety } = createSafetyActivities({ screen, eventLog });
    const verdict: SafetyVerdict = await env.run(checkPromptSafety, input('a family picnic', 'nsfw, nude, gore'));
    assert.equal(verdict.allowed, true);
  });

  test('refuses with a non-retryable UnsafePrompt failure', async () => {
    const { checkPromptSafety } = createSafetyActivities({ screen, eventLog });
    await assert.rejects(env.run(checkPromptSafety, input('hentai drawing')), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, 'UnsafePrompt');
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, /sexual-explicit/);
      return true;
    });
  });

  test('a screen that cannot answer fails retryably, so the workflow waits in pending_safety', async () => {
    const down: PromptScreen = {
      name: 'model-v1',
      screen: () => Promise.reject(new Error('connect ECONNREFUSED safety:443')),
    };
    const { checkPromptSafety } = createSafetyActivities({ screen: down, eventLog });
    await assert.rejects(env.run(checkPromptSafety, input('a red bicycle')), (err: unknown) => {
      assert.ok(!(err instanceof ApplicationFailure && err.nonRetryable), 'retryable');
      return true;
    });
  });
});
