// What to generate: the one shape that carries a request's parameters from the wire to the engine. The workflow's
// input (GenerationRequest), the inference activity's input and the backend's job each add their own fields around
// it instead of re-declaring them. No zod here: the workflow bundle imports this module.
import type { ModelName } from './models';

export interface LoraRef {
  readonly name: string;
  readonly weight: number;
}

export interface ControlNetRef {
  /** Conditioning type, e.g. `canny`, `depth`, `openpose`. */
  readonly type: string;
  /** Key of an uploaded conditioning image in the object store. */
  readonly imageKey?: string;
  readonly weight: number;
}

export interface GenerationParams {
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly model: ModelName;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  /** Image i uses seed + i, so a batch of N equals N single requests. */
  readonly seed: number;
  readonly numImages: number;
  readonly guidanceScale: number;
  readonly loras: readonly LoraRef[];
  readonly controlnets: readonly ControlNetRef[];
}

/**
 * Every key of GenerationParams, in the order activity inputs have always had on the wire and in histories. The
 * `satisfies` makes the compiler fail here when a field is added to the interface but not to this list.
 */
const PARAM_KEYS = {
  model: true,
  prompt: true,
  negativePrompt: true,
  width: true,
  height: true,
  steps: true,
  seed: true,
  numImages: true,
  guidanceScale: true,
  loras: true,
  controlnets: true,
} as const satisfies Record<keyof GenerationParams, true>;

/** The generation parameters of anything that carries them (a request, an activity input), and nothing else. */
export function generationParams(source: GenerationParams): GenerationParams {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(PARAM_KEYS) as (keyof GenerationParams)[]) out[key] = source[key];
  return out as unknown as GenerationParams;
}
