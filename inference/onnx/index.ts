// Entry point of the ONNX Runtime backend for the GPU worker: `createOnnxBackend(options)` resolves options (defaults,
// environment, overrides), reads the model registry, starts the inference threads and preloads models.
import type { InferenceBackend } from '../backend';
import { OnnxBackend } from './onnx-backend';
import { resolveOnnxBackendOptions, type OnnxBackendOptions } from './options';

export { OnnxBackend, type OnnxLoadedModelStatus } from './onnx-backend';
export { InferenceAbortedError } from '../backend';
export {
  ONNX_BACKEND_OPTION_TABLE,
  resolveOnnxBackendOptions,
  defaultRegistryPath,
  type OnnxBackendOptions,
  type OnnxBackendEnvOptions,
} from './options';
export { ModelRegistry, type RegistryModel } from './model-registry';

/**
 * Creates the backend. `options` override the environment (ATELIER_ONNX_*, ATELIER_MODEL_*; see
 * ONNX_BACKEND_OPTION_TABLE). Throws a TypeError for invalid options or registry, and an InferenceError when a
 * preloaded model cannot be verified or loaded.
 */
export async function createOnnxBackend(
  options: Partial<OnnxBackendOptions> = {},
): Promise<OnnxBackend & InferenceBackend> {
  return OnnxBackend.create(resolveOnnxBackendOptions(options));
}
