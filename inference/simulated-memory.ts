// Device memory of the SIMULATED GPU, modelled because there is no device to ask, with the same figures routing
// uses to decide that a request fits a fleet (core/routing.ts). The model, in full:
//
//   total = the GPU type's VRAM (core/gpu.ts GPU_SPECS).
//   used  = weights of the resident models + the running job's working memory, never above total.
//   weights of a model = 65% of its catalogue `vramGb` (modelWeightsGb). A model becomes resident when a job of it
//           first runs and stays, as a worker keeps its pipelines loaded; one that would not fit evicts the least
//           recently used models first.
//   working memory = what routing estimates the job needs beyond the weights (estimateVramGb - modelWeightsGb):
//           activations growing with pixels over the model's default size and with images, plus adapters. Held
//           while the job is on the GPU, 0 while it is idle.
//
// These are modelled figures for dashboards and for testing the metrics pipeline, not measurements.
import { GPU_SPECS, type GpuType } from '../core/gpu';
import { estimateVramGb, modelWeightsGb, type RoutingInput } from '../core/routing';
import type { ModelName } from '../core/models';
import type { DeviceMemory } from './telemetry';

const GIB = 2 ** 30;

export type SimulatedJobShape = Omit<RoutingInput, 'tier'>;

export class SimulatedGpuMemory {
  readonly totalBytes: number;
  /** Weights of the resident models, bytes, least recently used first. */
  private readonly resident = new Map<ModelName, number>();
  private workingBytes = 0;

  constructor(gpuType: GpuType) {
    this.totalBytes = GPU_SPECS[gpuType].vramGb * GIB;
  }

  /** A job takes the GPU: its model becomes (or stays) resident and its working memory is held until `jobEnded`. */
  jobStarted(job: SimulatedJobShape): void {
    const weights = modelWeightsGb(job.model) * GIB;
    this.resident.delete(job.model);
    this.resident.set(job.model, weights);
    this.workingBytes = estimateVramGb(job) * GIB - weights;
    for (const model of this.resident.keys()) {
      if (this.residentBytes() + this.workingBytes <= this.totalBytes || model === job.model) break;
      this.resident.delete(model);
    }
  }

  jobEnded(): void {
    this.workingBytes = 0;
  }

  snapshot(): DeviceMemory {
    const used = Math.min(this.totalBytes, this.residentBytes() + this.workingBytes);
    return { usedBytes: Math.round(used), totalBytes: this.totalBytes };
  }

  private residentBytes(): number {
    let sum = 0;
    for (const bytes of this.resident.values()) sum += bytes;
    return sum;
  }
}
