// Writes a random-weight Stable Diffusion pipeline in the layout of the standard diffusers ONNX export
// (model_index.json, text_encoder/, unet/, vae_decoder/, tokenizer/, scheduler/), with the input and output names,
// dtypes and ranks of a real export:
//   text_encoder: input_ids int32 [batch, sequence] -> last_hidden_state float32 [batch, sequence, D], pooler_output [batch, D]
//   unet: sample float32 [batch, 4, height, width], timestep float32 (or int64) [batch],
//         encoder_hidden_states float32 [batch, sequence, D] -> out_sample float32 [batch, 4, height, width]
//   vae_decoder: latent_sample float32 [batch, 4, height, width] -> sample float32 [batch, 3, 8*height, 8*width]
// The networks are small stand-ins with the same structure in miniature (a causal text transformer block; a UNet with a
// timestep embedding, a down and an up level, a skip connection and cross-attention on the text; a convolutional
// decoder that upsamples 8x), so every input changes the output and the images are not flat.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildClipTokenizerFiles, MODEL_MAX_LENGTH } from './clip-tokenizer-files';
import { DataType, GraphBuilder, WeightRng } from './graph';

/** Scale of the UNet's random correction to its identity path; tuned so images are neither flat nor saturated. */
const UNET_CORRECTION_GAIN = 0.3;

export interface StableDiffusionExportOptions {
  /** Seed of every random weight; the same options give byte-identical files. */
  readonly seed: number;
  /** ONNX opset of all three models. @default 17 */
  readonly opset?: number;
  /** Width of the text embeddings (CLIP ViT-L has 768). @default 32 */
  readonly textDim?: number;
  /** UNet channels at latent resolution and at half resolution. @default [8, 16] */
  readonly unetChannels?: readonly [number, number];
  /** Decoder channels at latent resolution and after each of the three 2x upsamplings. @default [16, 8, 8, 4] */
  readonly vaeChannels?: readonly [number, number, number, number];
  /** dtype of the UNet's `timestep` input: recent diffusers exports use float32, older ones and some optimum exports int64. @default 'float32' */
  readonly timestepType?: 'float32' | 'int64';
  /** Contents of scheduler/scheduler_config.json. @default SD 1.5's EulerDiscrete configuration */
  readonly schedulerConfig?: Record<string, unknown>;
  /** vae_decoder/config.json `scaling_factor`. @default 0.18215 */
  readonly vaeScalingFactor?: number;
}

export const SD15_EULER_SCHEDULER_CONFIG = {
  _class_name: 'EulerDiscreteScheduler',
  _diffusers_version: '0.27.2',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  interpolation_type: 'linear',
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  steps_offset: 1,
  timestep_spacing: 'leading',
  trained_betas: null,
  use_karras_sigmas: false,
} as const;

export interface ExportedFile {
  /** Path relative to the export's root, with forward slashes. */
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
}

function buildTextEncoder(rng: WeightRng, vocabSize: number, dim: number, opset: number): Uint8Array {
  const g = new GraphBuilder('text_encoder', rng);
  const ids = g.input('input_ids', DataType.INT32, ['batch', 'sequence']);
  const tokens = g.op('Gather', [g.weight('token_embedding', [vocabSize, dim], 1), ids]);
  const shape = g.op('Shape', [ids]);
  const seqLen = g.op('Gather', [shape, g.scalarInt('axis1', 1)], { axis: { int: 0 } });
  const positions = g.op('Range', [g.scalarInt('zero', 0), seqLen, g.scalarInt('one', 1)]);
  let x = g.op('Add', [
    tokens,
    g.op('Gather', [g.weight('position_embedding', [MODEL_MAX_LENGTH, dim], 0.5), positions]),
  ]);

  // Causal self-attention: a token sees itself and the tokens before it, as in CLIP's text transformer.
  const h = g.layerNorm(x, dim, 'ln1');
  const q = g.linear(h, dim, dim, 'q');
  const k = g.linear(h, dim, dim, 'k');
  const v = g.linear(h, dim, dim, 'v');
  const scores = g.op('Mul', [
    g.op('MatMul', [q, g.op('Transpose', [k], { perm: { ints: [0, 2, 1] } })]),
    g.floats('scale', [], [1 / Math.sqrt(dim)]),
  ]);
  const seqSquare = g.op(
    'Concat',
    [g.op('Unsqueeze', [seqLen, g.ints('ax0', [0])]), g.op('Unsqueeze', [seqLen, g.ints('ax0', [0])])],
    { axis: { int: 0 } },
  );
  const ones = g.op('ConstantOfShape', [seqSquare], { value: { tensor: { dims: [1], data: Float32Array.of(1) } } });
  const future = g.op('Trilu', [ones, g.scalarInt('k', 1)], { upper: { int: 1 } });
  const masked = g.op('Add', [scores, g.op('Mul', [future, g.floats('neg', [], [-1e4])])]);
  const attn = g.op('MatMul', [g.op('Softmax', [masked], { axis: { int: -1 } }), v]);
  x = g.op('Add', [x, g.linear(attn, dim, dim, 'o')]);

  const m = g.quickGelu(g.linear(g.layerNorm(x, dim, 'ln2'), dim, dim * 2, 'fc1'));
  x = g.op('Add', [x, g.linear(m, dim * 2, dim, 'fc2')]);
  const last = g.layerNorm(x, dim, 'final_ln', 'last_hidden_state');

  // pooler_output: the hidden state at the end-of-text token, which has the largest id (CLIP's argmax trick).
  const eos = g.op('ArgMax', [ids], { axis: { int: 1 }, keepdims: { int: 1 } });
  const batch = g.op('Gather', [shape, g.scalarInt('axis0', 0)], { axis: { int: 0 } });
  const gatherShape = g.op('Concat', [g.op('Unsqueeze', [batch, g.ints('ax0', [0])]), g.ints('one_d', [1, dim])], {
    axis: { int: 0 },
  });
  const index = g.op('Expand', [g.op('Unsqueeze', [eos, g.ints('ax2', [2])]), gatherShape]);
  g.op(
    'Squeeze',
    [g.op('GatherElements', [last, index], { axis: { int: 1 } }), g.ints('ax1', [1])],
    {},
    'pooler_output',
  );

  g.output('last_hidden_state', DataType.FLOAT, ['batch', 'sequence', dim]);
  g.output('pooler_output', DataType.FLOAT, ['batch', dim]);
  return g.encode(opset);
}

function buildUnet(
  rng: WeightRng,
  textDim: number,
  [c0, c1]: readonly [number, number],
  timestepType: 'float32' | 'int64',
  opset: number,
): Uint8Array {
  const g = new GraphBuilder('unet', rng);
  const sample = g.input('sample', DataType.FLOAT, ['batch', 4, 'height', 'width']);
  const timestep = g.input('timestep', timestepType === 'int64' ? DataType.INT64 : DataType.FLOAT, ['batch']);
  const context = g.input('encoder_hidden_states', DataType.FLOAT, ['batch', 'sequence', textDim]);

  // Sinusoidal timestep embedding, then an MLP, as in diffusers' TimestepEmbedding.
  const t = timestepType === 'int64' ? g.op('Cast', [timestep], { to: { int: DataType.FLOAT } }) : timestep;
  const half = c0 / 2;
  const freqs = Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half));
  const arg = g.op('Mul', [g.op('Unsqueeze', [t, g.ints('ax1', [1])]), g.floats('freqs', [1, half], freqs)]);
  const sinusoid = g.op('Concat', [g.op('Sin', [arg]), g.op('Cos', [arg])], { axis: { int: 1 } });
  const temb = g.silu(g.linear(sinusoid, c0, c1, 'time_embedding.linear_1'));
  const spatial = (x: string): string => g.op('Unsqueeze', [x, g.ints('ax23', [2, 3])]);
  const t0 = spatial(g.linear(temb, c1, c0, 'down0.time_proj', 0.5));
  const t1 = spatial(g.linear(temb, c1, c1, 'down1.time_proj', 0.5));

  // Level 0: conv_in and a residual block conditioned on the timestep.
  const h0 = g.conv(sample, 4, c0, { name: 'conv_in' });
  const h0b = g.op('Add', [h0, g.conv(g.silu(g.op('Add', [h0, t0])), c0, c0, { name: 'down0.conv', gain: 0.5 })]);

  // Level 1: downsample, residual block, cross-attention on the text embeddings.
  const d = g.conv(g.silu(h0b), c0, c1, { name: 'down1.downsample', stride: 2 });
  const d1 = g.op('Add', [d, g.conv(g.silu(g.op('Add', [d, t1])), c1, c1, { name: 'down1.conv', gain: 0.5 })]);
  const tokens = g.op('Transpose', [g.op('Reshape', [d1, g.ints('flat', [0, 0, -1])])], { perm: { ints: [0, 2, 1] } });
  const attnDim = c1;
  const q = g.linear(tokens, c1, attnDim, 'attn.to_q');
  const k = g.linear(context, textDim, attnDim, 'attn.to_k');
  const v = g.linear(context, textDim, attnDim, 'attn.to_v');
  const scores = g.op('Mul', [
    g.op('MatMul', [q, g.op('Transpose', [k], { perm: { ints: [0, 2, 1] } })]),
    g.floats('scale', [], [1 / Math.sqrt(attnDim)]),
  ]);
  const attended = g.linear(
    g.op('MatMul', [g.op('Softmax', [scores], { axis: { int: -1 } }), v]),
    attnDim,
    c1,
    'attn.to_out',
    2,
  );
  const back = g.op('Reshape', [g.op('Transpose', [attended], { perm: { ints: [0, 2, 1] } }), g.op('Shape', [d1])]);
  const mid = g.op('Add', [d1, back]);

  // Up: resize to level 0's exact size (odd latent sizes round down on the way down), join the skip connection.
  const sizes = g.op(
    'Concat',
    [
      g.op('Slice', [g.op('Shape', [mid]), g.ints('s0', [0]), g.ints('s2', [2])]),
      g.op('Slice', [g.op('Shape', [h0b]), g.ints('s2', [2]), g.ints('s4', [4])]),
    ],
    { axis: { int: 0 } },
  );
  const up = g.op('Resize', [mid, '', '', sizes], { mode: { string: 'nearest' } });
  const u = g.conv(up, c1, c0, { name: 'up.conv' });
  const joined = g.conv(g.op('Concat', [u, h0b], { axis: { int: 1 } }), 2 * c0, c0, { name: 'up.conv_skip' });
  // Identity path from the input: at high noise the scaled input is mostly the noise itself, so predicting it plus a
  // learned-looking correction keeps the random-weight denoiser's latents in the range a trained one produces.
  const correction = g.conv(g.silu(joined), c0, 4, { name: 'conv_out', gain: UNET_CORRECTION_GAIN });
  g.op('Add', [sample, correction], {}, 'out_sample');
  g.output('out_sample', DataType.FLOAT, ['batch', 4, 'height', 'width']);
  return g.encode(opset);
}

function buildVaeDecoder(
  rng: WeightRng,
  channels: readonly [number, number, number, number],
  opset: number,
): Uint8Array {
  const g = new GraphBuilder('vae_decoder', rng);
  const latent = g.input('latent_sample', DataType.FLOAT, ['batch', 4, 'height', 'width']);
  // The pipeline divides latents by the scaling factor (~5x); the input gain undoes it so activations stay near unit.
  let x = g.silu(g.conv(latent, 4, channels[0], { name: 'conv_in', gain: 0.18215 }));
  for (let level = 1; level < 4; level++) {
    const up = g.op('Resize', [x, '', g.floats('scales', [4], [1, 1, 2, 2])], { mode: { string: 'nearest' } });
    x = g.silu(g.conv(up, channels[level - 1] as number, channels[level] as number, { name: `up${level}.conv` }));
  }
  g.conv(x, channels[3], 3, { name: 'conv_out', gain: 0.9, out: 'sample' });
  g.output('sample', DataType.FLOAT, ['batch', 3, 'height_out', 'width_out']);
  return g.encode(opset);
}

/** Writes the export into `dir` and returns every file with its sha256 and size, sorted by path. */
export function writeStableDiffusionExport(dir: string, options: StableDiffusionExportOptions): ExportedFile[] {
  const opset = options.opset ?? 17;
  const textDim = options.textDim ?? 32;
  const tokenizer = buildClipTokenizerFiles();
  // Separate generators per model, so widening the UNet for the benchmark leaves the other models' weights unchanged.
  const files = new Map<string, Uint8Array | string>([
    ['text_encoder/model.onnx', buildTextEncoder(new WeightRng(options.seed), tokenizer.vocabSize, textDim, opset)],
    [
      'unet/model.onnx',
      buildUnet(
        new WeightRng(options.seed + 1),
        textDim,
        options.unetChannels ?? [8, 16],
        options.timestepType ?? 'float32',
        opset,
      ),
    ],
    [
      'vae_decoder/model.onnx',
      buildVaeDecoder(new WeightRng(options.seed + 2), options.vaeChannels ?? [16, 8, 8, 4], opset),
    ],
    [
      'vae_decoder/config.json',
      JSON.stringify(
        { _class_name: 'AutoencoderKL', latent_channels: 4, scaling_factor: options.vaeScalingFactor ?? 0.18215 },
        null,
        2,
      ) + '\n',
    ],
    [
      'scheduler/scheduler_config.json',
      JSON.stringify(options.schedulerConfig ?? SD15_EULER_SCHEDULER_CONFIG, null, 2) + '\n',
    ],
    [
      'model_index.json',
      JSON.stringify(
        {
          _class_name: 'OnnxStableDiffusionPipeline',
          _diffusers_version: '0.27.2',
          feature_extractor: [null, null],
          requires_safety_checker: false,
          safety_checker: [null, null],
          scheduler: ['diffusers', String((options.schedulerConfig ?? SD15_EULER_SCHEDULER_CONFIG)._class_name)],
          text_encoder: ['diffusers', 'OnnxRuntimeModel'],
          tokenizer: ['transformers', 'CLIPTokenizer'],
          unet: ['diffusers', 'OnnxRuntimeModel'],
          vae_decoder: ['diffusers', 'OnnxRuntimeModel'],
          vae_encoder: [null, null],
        },
        null,
        2,
      ) + '\n',
    ],
    ...[...tokenizer.files].map(([name, text]) => [`tokenizer/${name}`, text] as [string, string]),
  ]);
  const out: ExportedFile[] = [];
  for (const [path, body] of files) {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
    const target = join(dir, path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, bytes);
    out.push({ path, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}
