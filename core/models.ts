// The catalogue of models a client may ask for, with the limits the gateway validates against and the figures
// the router and the simulated backend use. Which backend serves a model is worker configuration, not here.

export interface ModelSpec {
  readonly family: 'sd15' | 'sdxl' | 'sd3' | 'flux';
  /** Denoising steps when the request gives none. */
  readonly defaultSteps: number;
  readonly maxSteps: number;
  readonly defaultWidth: number;
  readonly defaultHeight: number;
  /** Inclusive bounds on each side, pixels. */
  readonly minSize: number;
  readonly maxSize: number;
  /** Weights plus activations at default resolution, GiB (drives routing). */
  readonly vramGb: number;
  /**
   * FP16 work of one denoising step at 1024x1024 for one image, including classifier-free guidance, in TFLOP.
   * Used by the simulated GPU backend's latency model.
   */
  readonly stepTflopAt1Mpx: number;
  /** Whether LoRA adapters and ControlNets can be attached. */
  readonly adapters: boolean;
}

export const MODELS = {
  sdxl: {
    family: 'sdxl',
    defaultSteps: 30,
    maxSteps: 150,
    defaultWidth: 1024,
    defaultHeight: 1024,
    minSize: 256,
    maxSize: 4096,
    vramGb: 12,
    stepTflopAt1Mpx: 12,
    adapters: true,
  },
  'sdxl-turbo': {
    family: 'sdxl',
    defaultSteps: 4,
    maxSteps: 10,
    defaultWidth: 512,
    defaultHeight: 512,
    minSize: 256,
    maxSize: 2048,
    vramGb: 10,
    stepTflopAt1Mpx: 6,
    adapters: true,
  },
  sd3: {
    family: 'sd3',
    defaultSteps: 28,
    maxSteps: 150,
    defaultWidth: 1024,
    defaultHeight: 1024,
    minSize: 256,
    maxSize: 4096,
    vramGb: 26,
    stepTflopAt1Mpx: 20,
    adapters: true,
  },
  flux: {
    family: 'flux',
    defaultSteps: 28,
    maxSteps: 100,
    defaultWidth: 1024,
    defaultHeight: 1024,
    minSize: 256,
    maxSize: 4096,
    vramGb: 34,
    stepTflopAt1Mpx: 36,
    adapters: true,
  },
  // Tiny random-weight export in the standard diffusers ONNX layout, for tests and CPU demos (issue 3).
  'tiny-sd': {
    family: 'sd15',
    defaultSteps: 4,
    maxSteps: 50,
    defaultWidth: 64,
    defaultHeight: 64,
    minSize: 32,
    maxSize: 256,
    vramGb: 0.01,
    stepTflopAt1Mpx: 0.01,
    adapters: false,
  },
} as const satisfies Record<string, ModelSpec>;

export type ModelName = keyof typeof MODELS;
export const MODEL_NAMES = Object.keys(MODELS) as ModelName[];

export function isModelName(value: string): value is ModelName {
  return Object.prototype.hasOwnProperty.call(MODELS, value);
}

export function modelSpec(name: ModelName): ModelSpec {
  return MODELS[name];
}
