// The generation request: its wire shape, validation with client-facing codes, and the normalized form that the
// workflow receives (every default filled in, so a replayed workflow never depends on gateway defaults).
import { z } from 'zod';
import { MODELS, isModelName } from './models';
import { isTier, type Tier } from './tiers';
import type { RejectCode } from './errors';
import type { ControlNetRef, GenerationParams, LoraRef } from './generation-params';

export { generationParams, type ControlNetRef, type GenerationParams, type LoraRef } from './generation-params';

export const PROMPT_MAX_CHARS = 2000;
export const MAX_IMAGES_PER_REQUEST = 8;
export const MAX_LORAS = 5;
export const MAX_CONTROLNETS = 4;
export const SEED_MAX = 0xffff_ffff;
/**
 * Bounds of a request's `deadlineMs`, a budget counted from acceptance. Under a second no request can even be screened
 * and queued; a day is the longest anything waits (the safety screen's patience) and the re-attach window.
 */
export const DEADLINE_MIN_MS = 1000;
export const DEADLINE_MAX_MS = 24 * 60 * 60 * 1000;
/** Client idempotency keys: printable, no spaces, bounded. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

const loraSchema = z.strictObject({
  name: z.string().min(1).max(128),
  weight: z.number().min(-2).max(2).default(1),
});

const controlnetSchema = z.strictObject({
  /** Conditioning type, e.g. `canny`, `depth`, `openpose`. */
  type: z.string().min(1).max(64),
  /** Key of an uploaded conditioning image in the object store. */
  imageKey: z.string().min(1).max(512).optional(),
  weight: z.number().min(0).max(2).default(1),
});

/** Shape and types of a `generate` frame; semantic limits are checked after, so each gets its own code. */
export const generateFrameSchema = z.strictObject({
  type: z.literal('generate'),
  requestId: z.string().regex(REQUEST_ID_PATTERN, 'letters, digits and ._:- only, at most 128').optional(),
  prompt: z.string(),
  negativePrompt: z.string().max(PROMPT_MAX_CHARS).optional(),
  model: z.string(),
  tier: z.string(),
  width: z.number().int(),
  height: z.number().int(),
  steps: z.number().int().min(1).optional(),
  seed: z.number().int().min(0).max(SEED_MAX).optional(),
  numImages: z.number().int().min(1).max(MAX_IMAGES_PER_REQUEST).optional(),
  guidanceScale: z.number().min(0).max(30).optional(),
  loras: z.array(loraSchema).max(MAX_LORAS).optional(),
  controlnets: z.array(controlnetSchema).max(MAX_CONTROLNETS).optional(),
  /**
   * How long the client will wait for the result, ms from acceptance: a budget rather than an instant, so a client
   * whose clock is off cannot send a deadline that has already passed, or one a day away, by mistake.
   */
  deadlineMs: z
    .number()
    .int()
    .min(DEADLINE_MIN_MS, `at least ${DEADLINE_MIN_MS} ms`)
    .max(DEADLINE_MAX_MS, `at most ${DEADLINE_MAX_MS} ms (24 h)`)
    .optional(),
});

export type GenerateFrame = z.infer<typeof generateFrameSchema>;
// The adapter shapes are declared zod-free in generation-params.ts (the workflow bundle imports them); these
// assignments fail to compile if the schemas' output drifts from them.
const loraMatches = (parsed: z.infer<typeof loraSchema>): LoraRef => parsed;
const controlnetMatches = (parsed: z.infer<typeof controlnetSchema>): ControlNetRef => parsed;
void loraMatches;
void controlnetMatches;

/** A validated request with every default resolved. This is the workflow's input. */
export interface GenerationRequest extends GenerationParams {
  readonly requestId: string;
  readonly userId: string;
  readonly tier: Tier;
  /** Region whose queues serve this request. */
  readonly region: string;
  /** Gateway receive time, ms since epoch. */
  readonly submittedAt: number;
  /**
   * How long each fleet may leave the GPU step unstarted before the request moves on, ms. Never set from a client
   * frame: absent, the tier's default applies (workflows/activity-options.ts GPU_SCHEDULE_TO_START). Tests and
   * operator tooling that start workflows directly may set it.
   */
  readonly gpuStartTimeoutMs?: number;
  /**
   * The user's share of a GPU queue against other users with queued work (Temporal fairness weight, core/fairness.ts):
   * twice the weight, twice the dispatches while both have a backlog. Never set from a client frame: it comes from
   * the user's plan. Absent, 1 (every user an equal share); workflows started before it existed have none.
   */
  readonly fairnessWeight?: number;
  /**
   * When the request must have finished, ms since epoch: the gateway's acceptance time (`submittedAt`) plus the
   * frame's `deadlineMs`, fixed once, so the workflow and its replays never read a clock to find it. Past it the
   * request ends TIMED_OUT and its GPU run is stopped (workflows/deadline.ts). Absent: no deadline.
   */
  readonly deadlineAt?: number;
}

export interface ValidationProblem {
  readonly code: RejectCode;
  readonly message: string;
  /** Field paths and what is wrong with each. */
  readonly details?: Readonly<Record<string, string>>;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; problem: ValidationProblem };

export interface RequestContext {
  readonly userId: string;
  readonly region: string;
  readonly now: number;
  /** Fresh client-invisible values; injected so validation stays pure and testable. */
  readonly newRequestId: () => string;
  readonly newSeed: () => number;
}

const DEFAULT_GUIDANCE = 7.5;

/**
 * Validates a decoded `generate` frame. Type errors give `INVALID_REQUEST` with details; the semantic checks that
 * clients most often get wrong have their own codes (model, tier, size, prompt).
 */
export function validateGenerate(frame: unknown, ctx: RequestContext): ValidationResult<GenerationRequest> {
  const parsed = generateFrameSchema.safeParse(frame);
  if (!parsed.success) {
    const details: Record<string, string> = {};
    for (const issue of parsed.error.issues) {
      const path = issue.path.length > 0 ? issue.path.join('.') : '(frame)';
      details[path] ??= issue.message;
    }
    return fail('INVALID_REQUEST', `Invalid generate request: ${Object.keys(details).join(', ')}`, details);
  }
  const f = parsed.data;
  if (!isModelName(f.model)) {
    return fail('UNKNOWN_MODEL', `Unknown model ${JSON.stringify(f.model)}; known: ${Object.keys(MODELS).join(', ')}`);
  }
  if (!isTier(f.tier)) {
    return fail('UNKNOWN_TIER', `Unknown tier ${JSON.stringify(f.tier)}; expected turbo, fast or relax`);
  }
  const prompt = f.prompt.trim();
  if (prompt.length === 0) return fail('INVALID_PROMPT', 'The prompt is empty');
  if (prompt.length > PROMPT_MAX_CHARS) {
    return fail('INVALID_PROMPT', `The prompt has ${prompt.length} characters; the limit is ${PROMPT_MAX_CHARS}`);
  }
  const spec = MODELS[f.model];
  for (const [field, value] of [
    ['width', f.width],
    ['height', f.height],
  ] as const) {
    if (value < spec.minSize || value > spec.maxSize || value % 8 !== 0) {
      return fail(
        'INVALID_SIZE',
        `${field} ${value} is invalid for ${f.model}: it must be a multiple of 8 between ${spec.minSize} and ${spec.maxSize}`,
        { [field]: `multiple of 8 in [${spec.minSize}, ${spec.maxSize}]` },
      );
    }
  }
  const steps = f.steps ?? spec.defaultSteps;
  if (steps > spec.maxSteps) {
    return fail('INVALID_REQUEST', `steps ${steps} exceeds ${spec.maxSteps} for ${f.model}`, {
      steps: `at most ${spec.maxSteps}`,
    });
  }
  if (!spec.adapters && ((f.loras?.length ?? 0) > 0 || (f.controlnets?.length ?? 0) > 0)) {
    return fail('INVALID_REQUEST', `${f.model} does not support LoRA or ControlNet adapters`);
  }
  return {
    ok: true,
    value: {
      requestId: f.requestId ?? ctx.newRequestId(),
      userId: ctx.userId,
      prompt,
      negativePrompt: f.negativePrompt?.trim() ?? '',
      model: f.model,
      tier: f.tier,
      width: f.width,
      height: f.height,
      steps,
      seed: f.seed ?? ctx.newSeed(),
      numImages: f.numImages ?? 1,
      guidanceScale: f.guidanceScale ?? DEFAULT_GUIDANCE,
      loras: f.loras ?? [],
      controlnets: f.controlnets ?? [],
      region: ctx.region,
      submittedAt: ctx.now,
      // Only when asked for: a request without a deadline is the same workflow input as before deadlines existed.
      ...(f.deadlineMs === undefined ? {} : { deadlineAt: ctx.now + f.deadlineMs }),
    },
  };
}

function fail(
  code: RejectCode,
  message: string,
  details?: Record<string, string>,
): { ok: false; problem: ValidationProblem } {
  return { ok: false, problem: details ? { code, message, details } : { code, message } };
}

/** Workflow id for a user's request: deterministic, so a resubmitted `requestId` reaches the same workflow. */
export function generationWorkflowId(userId: string, requestId: string): string {
  return `gen:${userId}:${requestId}`;
}
