// The workflows that control workers register (and that infra/bundle-workflows.ts bundles).
export { generateImage, statusQuery, type GenerationResult, type GenerationView } from './generate-image';
