// Tensor helpers of the Stable Diffusion pipeline (pipeline.ts): checking that an export's models have the inputs of
// the standard diffusers ONNX layout, building the inputs whose dtype or shape varies between exports, and the
// arithmetic between model runs (latent scaling, classifier-free guidance), each one loop over the whole batch into
// buffers the caller allocated once. Its stages stay readable as the sequence of model runs while the loops that must
// stay bit-exact live here.
import * as ort from 'onnxruntime-node';

/** An export whose models lack the inputs or outputs of the standard layout. */
export class IncompatibleExportError extends Error {
  override readonly name = 'IncompatibleExportError';
}

type Session = ort.InferenceSession;
type TensorMeta = ort.InferenceSession.TensorValueMetadata;

/** The inputs and outputs of an export's models whose dtype, shape or name varies between exports. */
export interface ExportLayout {
  readonly inputIds: TensorMeta;
  readonly timestep: TensorMeta;
  /** Only LCM-distilled UNets take the guidance scale as an embedding. */
  readonly timestepCond: TensorMeta | undefined;
  readonly hiddenStateOutput: string;
  readonly unetOutput: string;
  readonly vaeOutput: string;
}

/** Checks that the sessions have the inputs of the standard layout; an export without them is incompatible. */
export function exportLayout(textEncoder: Session, unet: Session, vaeDecoder: Session): ExportLayout {
  const inputIds = tensorInput(textEncoder, 'input_ids', 'text_encoder', true);
  if (inputIds.type !== 'int32' && inputIds.type !== 'int64') {
    throw new IncompatibleExportError(`text_encoder: input_ids dtype ${inputIds.type} (expected int32 or int64)`);
  }
  float32Input(unet, 'sample', 'unet');
  float32Input(unet, 'encoder_hidden_states', 'unet');
  const timestep = tensorInput(unet, 'timestep', 'unet', true);
  const timestepCond = tensorInput(unet, 'timestep_cond', 'unet', false);
  float32Input(vaeDecoder, 'latent_sample', 'vae_decoder');
  return {
    inputIds,
    timestep,
    timestepCond,
    hiddenStateOutput: outputName(textEncoder, 'last_hidden_state'),
    unetOutput: outputName(unet, 'out_sample'),
    vaeOutput: outputName(vaeDecoder, 'sample'),
  };
}

function tensorInput(session: Session, name: string, model: string, required: true): TensorMeta;
function tensorInput(session: Session, name: string, model: string, required: false): TensorMeta | undefined;
function tensorInput(session: Session, name: string, model: string, required: boolean): TensorMeta | undefined {
  const meta = session.inputMetadata.find((m) => m.name === name);
  if (!meta) {
    if (!required) return undefined;
    throw new IncompatibleExportError(`${model}: no input named ${name} (inputs: ${session.inputNames.join(', ')})`);
  }
  if (!meta.isTensor) throw new IncompatibleExportError(`${model}: input ${name} is not a tensor`);
  return meta;
}

/**
 * The pipeline's latents and embeddings are float32 on the host. An fp16 export runs fp16 on the device all the same
 * when its graph casts at the inputs and outputs (bench/gpu/export_sd_turbo.py writes one); float16 inputs would
 * need a conversion of every tensor on the host at every step.
 */
function float32Input(session: Session, name: string, model: string): void {
  const meta = tensorInput(session, name, model, true);
  if (meta.type !== 'float32') {
    throw new IncompatibleExportError(`${model}: input ${name} is ${meta.type}; float32 inputs and outputs expected`);
  }
}

/** Exports name outputs inconsistently; a model's first output stands in for the usual name. */
function outputName(session: Session, preferred: string): string {
  return session.outputNames.includes(preferred) ? preferred : (session.outputNames[0] as string);
}

/** Token ids as the text encoder's `input_ids` dtype, int32 or int64 depending on the export. */
export function tokenIdsTensor(meta: TensorMeta, ids: Int32Array, rows: number, seqLen: number): ort.Tensor {
  return meta.type === 'int64'
    ? new ort.Tensor(
        'int64',
        BigInt64Array.from(ids, (v) => BigInt(v)),
        [rows, seqLen],
      )
    : new ort.Tensor('int32', ids, [rows, seqLen]);
}

/** The UNet's `timestep` input takes float32 in recent diffusers exports and int64 in older and some optimum ones. */
export function timestepTensor(meta: TensorMeta, value: number, batch: number): ort.Tensor {
  const first = meta.shape[0];
  const length = meta.shape.length === 0 ? 0 : typeof first === 'number' && first > 0 ? first : batch;
  const dims = meta.shape.length === 0 ? [] : [length];
  const count = Math.max(1, length);
  if (meta.type === 'int64') {
    return new ort.Tensor('int64', new BigInt64Array(count).fill(BigInt(Math.trunc(value))), dims);
  }
  if (meta.type === 'float32') return new ort.Tensor('float32', new Float32Array(count).fill(value), dims);
  throw new IncompatibleExportError(`unet: timestep dtype ${meta.type} is not supported (float32 or int64)`);
}

/** diffusers' get_guidance_scale_embedding, for LCM-distilled UNets that take the guidance as `timestep_cond`. */
function guidanceEmbedding(guidanceScale: number, dim: number): Float32Array {
  const out = new Float32Array(dim);
  const half = Math.floor(dim / 2);
  const w = (guidanceScale - 1) * 1000;
  const k = Math.log(10000) / (half - 1);
  for (let i = 0; i < half; i++) {
    out[i] = Math.sin(w * Math.exp(-k * i));
    out[half + i] = Math.cos(w * Math.exp(-k * i));
  }
  return out;
}

/** The UNet's `timestep_cond` for a batch: the guidance embedding repeated per row. */
export function timestepCondTensor(meta: TensorMeta, guidanceScale: number, batch: number): ort.Tensor {
  const dim = meta.shape[1];
  if (typeof dim !== 'number') throw new IncompatibleExportError('unet: timestep_cond needs a fixed embedding size');
  const embedding = guidanceEmbedding(guidanceScale, dim);
  const cond = new Float32Array(batch * dim);
  for (let k = 0; k < batch; k++) cond.set(embedding, k * dim);
  return new ort.Tensor('float32', cond, [batch, dim]);
}

/** Sets every element of a timestep tensor made by timestepTensor to `value`, reusing its data. */
export function setTimestep(tensor: ort.Tensor, value: number): void {
  if (tensor.type === 'int64') (tensor.data as BigInt64Array).fill(BigInt(Math.trunc(value)));
  else (tensor.data as Float32Array).fill(value);
}

/**
 * The UNet's `encoder_hidden_states` for the members still in a pass, from the text encoder's output `hidden` (under
 * guidance every negative-prompt row, then every prompt row, as encodePrompt ran them): `rows[k]` is member k's row
 * among the `encoded` prompts. Rows are in the order the UNet output is read back in.
 */
export function contextTensor(
  hidden: Float32Array,
  encoded: number,
  rows: readonly number[],
  guided: boolean,
  seqLen: number,
  contextDim: number,
): ort.Tensor {
  const rowSize = seqLen * contextDim;
  const n = rows.length;
  const halves = guided ? 2 : 1;
  const data = new Float32Array(halves * n * rowSize);
  for (let half = 0; half < halves; half++) {
    rows.forEach((row, k) => {
      const from = (half * encoded + row) * rowSize;
      data.set(hidden.subarray(from, from + rowSize), (half * n + k) * rowSize);
    });
  }
  return new ort.Tensor('float32', data, [halves * n, seqLen, contextDim]);
}

/** Writes the batch's latents times `scale` into the UNet's `sample` data, a second time after them all if guided. */
export function fillSample(into: Float32Array, latents: Float32Array, scale: number, guided: boolean): void {
  const total = latents.length;
  for (let j = 0; j < total; j++) into[j] = (latents[j] as number) * scale;
  if (guided) into.copyWithin(total, 0, total);
}

/**
 * Classifier-free guidance over the whole batch: the UNet output `out` holds every unconditional prediction, then
 * every conditional one; `into` (one row per member) gets uncond + guidance * (cond - uncond).
 */
export function applyGuidance(out: Float32Array, guidance: number, into: Float32Array): void {
  const total = into.length;
  for (let j = 0; j < total; j++) {
    const uv = out[j] as number;
    into[j] = uv + guidance * ((out[total + j] as number) - uv);
  }
}

/** The batch's latents times `factor`: the VAE decoder's `latent_sample` data. */
export function scaledLatents(latents: Float32Array, factor: number): Float32Array {
  const out = new Float32Array(latents.length);
  for (let j = 0; j < latents.length; j++) out[j] = (latents[j] as number) * factor;
  return out;
}
