// The prompt safety check that runs before any GPU time is spent. `PromptScreen` is the seam for the screen that
// answers: today the rules-based `rules-v1` below; a model-based Safety service (seed 001, "Safety API") implements
// the same interface and throws when it is unreachable, which the workflow turns into the `pending_safety` state.
import type { SafetyActivities, SafetyInput, SafetyVerdict } from '../core/activities';
import type { RequestEventPublisher } from '../runtime/event-log';
import { activityFailure } from './failures';
import { announceStatus } from './request-events';

export interface ScreenResult {
  readonly allowed: boolean;
  /** Policy categories that matched, e.g. `sexual-minors`; empty when allowed. */
  readonly categories: readonly string[];
}

export interface PromptScreen {
  /** Recorded with every verdict, e.g. `rules-v1`. */
  readonly name: string;
  /**
   * Screens a prompt. Throws (any error) when the screen cannot answer right now; the activity's retry policy
   * and the workflow's `pending_safety` state handle that. Never throws for a refused prompt: returns allowed=false.
   */
  screen(prompt: string): Promise<ScreenResult>;
}

/** A policy category: blocked when any of `phrases` occurs, or when one of each group in `together` occurs. */
export interface ScreenCategory {
  readonly name: string;
  readonly phrases?: readonly string[];
  readonly together?: readonly (readonly string[])[];
}

const MINOR_TERMS = [
  'child',
  'children',
  'kid',
  'kids',
  'minor',
  'minors',
  'underage',
  'preteen',
  'toddler',
  'schoolgirl',
  'schoolboy',
  'loli',
  'shota',
  'little girl',
  'little boy',
  'young girl',
  'young boy',
];
const SEXUAL_TERMS = [
  'nude',
  'naked',
  'nsfw',
  'sex',
  'sexual',
  'sexy',
  'erotic',
  'porn',
  'lingerie',
  'topless',
  'undressed',
  'explicit',
  'seductive',
];

/**
 * The rules of `rules-v1`. Deliberately small and precise (word-boundary phrase matches on normalized text): a
 * false positive costs a paying user a refused request, and the model-based screen is where recall comes from.
 */
export const RULES_V1: readonly ScreenCategory[] = [
  { name: 'sexual-minors', together: [MINOR_TERMS, SEXUAL_TERMS] },
  {
    name: 'sexual-explicit',
    phrases: [
      'porn',
      'porno',
      'pornographic',
      'hentai',
      'explicit sex',
      'sex act',
      'sex scene',
      'genitals',
      'genitalia',
      'xxx',
      'nsfw',
    ],
  },
  {
    name: 'graphic-violence',
    phrases: [
      'gore',
      'gory',
      'dismembered',
      'dismemberment',
      'decapitated',
      'decapitation',
      'disembowelled',
      'disemboweled',
      'mutilated',
      'mutilation',
      'beheading',
    ],
  },
  { name: 'self-harm', phrases: ['self harm', 'selfharm', 'suicide', 'cutting wrists', 'slit wrists'] },
];

const LEET: Readonly<Record<string, string>> = {
  '0': 'o',
  '1': 'i',
  '!': 'i',
  '3': 'e',
  '4': 'a',
  '@': 'a',
  '5': 's',
  $: 's',
  '7': 't',
  '+': 't',
};

/**
 * Folds the tricks that defeat naive matching: case, accents and look-alike forms (NFKD), leetspeak digits inside
 * words (`p0rn`), punctuation used as spacing (`n.u.d.e`), and letters spaced out one by one (`n u d e`).
 * Returns words separated by single spaces.
 */
export function normalizePrompt(prompt: string): string {
  return joinSpelledOutWords(normalizedWords(prompt), true).join(' ');
}

function normalizedWords(prompt: string): string[] {
  const folded = prompt
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase();
  // Leetspeak only inside tokens that contain letters: "3 cats" or "1024" keep their digits.
  // Symbols count as letters only before a letter or digit, so "wow!" keeps its "!" as punctuation.
  const tokens = folded
    .split(/\s+/)
    .map((token) =>
      /\p{L}/u.test(token) ? token.replace(/[0-9]|[!@$+](?=[\p{L}\p{N}])/gu, (c) => LEET[c] ?? c) : token,
    );
  return tokens
    .join(' ')
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim()
    .split(' ')
    .filter((w) => w.length > 0);
}

/**
 * Rejoins runs of single letters ("n u d e" -> "nude"). With `splitArticle`, a run that starts with "a" or "i"
 * keeps that letter as a word ("a p o r n" -> "a porn"), since those two are words on their own.
 */
function joinSpelledOutWords(words: readonly string[], splitArticle: boolean): string[] {
  const out: string[] = [];
  let run = '';
  const flush = (): void => {
    if (splitArticle && run.length >= 3 && (run.startsWith('a') || run.startsWith('i')))
      out.push(run.slice(0, 1), run.slice(1));
    else if (run) out.push(run);
    run = '';
  };
  for (const w of words) {
    if (w.length === 1 && /\p{L}/u.test(w)) {
      run += w;
      continue;
    }
    flush();
    out.push(w);
  }
  flush();
  return out;
}

/** The normalized prompt, plus the variant whose spelled-out runs keep a leading "a"/"i" ("a n a l..."). */
function normalizedVariants(prompt: string): string[] {
  const words = normalizedWords(prompt);
  const primary = joinSpelledOutWords(words, true).join(' ');
  const whole = joinSpelledOutWords(words, false).join(' ');
  return whole === primary ? [primary] : [primary, whole];
}

/** `rules-v1`: phrase lists matched on word boundaries of the normalized prompt. Never unavailable. */
export class RulesPromptScreen implements PromptScreen {
  readonly name = 'rules-v1';
  private readonly categories: readonly { name: string; phrases: string[]; together: string[][] }[];

  constructor(categories: readonly ScreenCategory[] = RULES_V1) {
    this.categories = categories.map((c) => ({
      name: c.name,
      phrases: (c.phrases ?? []).map(normalizePrompt),
      together: (c.together ?? []).map((group) => group.map(normalizePrompt)),
    }));
  }

  async screen(prompt: string): Promise<ScreenResult> {
    // Padding with spaces turns "contains ' word '" into a word-boundary match for single words and phrases alike.
    const texts = normalizedVariants(prompt).map((t) => ` ${t} `);
    const has = (phrase: string): boolean => texts.some((text) => text.includes(` ${phrase} `));
    const categories = this.categories
      .filter((c) => c.phrases.some(has) || (c.together.length > 0 && c.together.every((group) => group.some(has))))
      .map((c) => c.name);
    return { allowed: categories.length === 0, categories };
  }
}

export interface SafetyDeps {
  readonly screen: PromptScreen;
  readonly eventLog: RequestEventPublisher;
}

export function createSafetyActivities({ screen, eventLog }: SafetyDeps): SafetyActivities {
  return {
    /**
     * Screens the prompt only: negative prompts routinely list what the user does NOT want ("nsfw, gore"), so
     * screening them would refuse the most careful users.
     */
    async checkPromptSafety(input: SafetyInput): Promise<SafetyVerdict> {
      await announceStatus(eventLog, 'safety_check');
      const result = await screen.screen(input.prompt);
      if (!result.allowed) {
        throw activityFailure(
          'UnsafePrompt',
          `The prompt was refused by the safety screen (${result.categories.join(', ')})`,
          {
            details: [{ screen: screen.name, categories: result.categories }],
          },
        );
      }
      return { allowed: true, screen: screen.name };
    },
  };
}
