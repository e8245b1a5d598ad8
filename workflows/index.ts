// The workflows that control workers register (and that workers/workflow-bundle.ts bundles).
export { generateImage, statusQuery, type GenerationResult, type GenerationView } from './generate-image';
export { autoscaler, autoscalerQuery, type AutoscalerInput, type AutoscalerView } from './autoscaler';
