// A small ONNX graph builder over onnx-proto.ts: named initializers with seeded random weights, one call per node,
// and the few composite layers (conv, linear, SiLU, LayerNorm) the Stable Diffusion stand-ins need.
import {
  DataType,
  encodeModel,
  type AttributeValue,
  type DataTypeCode,
  type NodeSpec,
  type TensorValue,
  type ValueInfo,
} from './onnx-proto';

/**
 * Seeded uniform and Gaussian draws (mulberry32 + Box-Muller). The generated weights depend only on the seed, so the
 * committed models are reproducible byte for byte by re-running the generator.
 */
export class WeightRng {
  private state: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }
}

export class GraphBuilder {
  private readonly nodes: NodeSpec[] = [];
  private readonly initializers = new Map<string, TensorValue>();
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private counter = 0;

  constructor(
    private readonly name: string,
    private readonly rng: WeightRng,
  ) {}

  input(name: string, elemType: DataTypeCode, shape: readonly (number | string)[]): string {
    this.inputs.push({ name, elemType, shape });
    return name;
  }

  output(name: string, elemType: DataTypeCode, shape: readonly (number | string)[]): void {
    this.outputs.push({ name, elemType, shape });
  }

  constant(name: string, dims: readonly number[], data: Float32Array | Int32Array | BigInt64Array): string {
    const unique = `${name}_${this.counter++}`;
    this.initializers.set(unique, { dims, data });
    return unique;
  }

  ints(name: string, values: readonly number[]): string {
    return this.constant(name, [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  scalarInt(name: string, value: number): string {
    return this.constant(name, [], BigInt64Array.of(BigInt(value)));
  }

  floats(name: string, dims: readonly number[], values: readonly number[]): string {
    return this.constant(name, dims, Float32Array.from(values));
  }

  /** Normal(0, std) weights. */
  weight(name: string, dims: readonly number[], std: number): string {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = this.rng.normal() * std;
    return this.constant(name, dims, data);
  }

  filled(name: string, dims: readonly number[], value: number): string {
    const n = dims.reduce((a, b) => a * b, 1);
    return this.constant(name, dims, new Float32Array(n).fill(value));
  }

  /** Adds a node and returns its first output's name. */
  op(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
    outputName?: string,
  ): string {
    const id = this.counter++;
    const output = outputName ?? `${opType.toLowerCase()}_${id}`;
    this.nodes.push({ opType, name: `${opType}_${id}`, inputs, outputs: [output], attributes });
    return output;
  }

  // --- composite layers -------------------------------------------------------------------------------------------

  /** 3x3 (or kxk) convolution with He-scaled weights and zero bias; `gain` scales the weights. */
  conv(
    x: string,
    cin: number,
    cout: number,
    opts: { kernel?: number; stride?: number; gain?: number; name: string; out?: string },
  ): string {
    const k = opts.kernel ?? 3;
    const std = (opts.gain ?? 1) * Math.sqrt(2 / (cin * k * k));
    const w = this.weight(`${opts.name}.weight`, [cout, cin, k, k], std);
    const b = this.filled(`${opts.name}.bias`, [cout], 0);
    const pad = Math.floor(k / 2);
    return this.op(
      'Conv',
      [x, w, b],
      {
        kernel_shape: { ints: [k, k] },
        pads: { ints: [pad, pad, pad, pad] },
        strides: { ints: [opts.stride ?? 1, opts.stride ?? 1] },
      },
      opts.out,
    );
  }

  /** x @ W + b over the last axis. */
  linear(x: string, din: number, dout: number, name: string, gain = 1): string {
    const w = this.weight(`${name}.weight`, [din, dout], gain / Math.sqrt(din));
    const b = this.filled(`${name}.bias`, [dout], 0);
    return this.op('Add', [this.op('MatMul', [x, w]), b]);
  }

  silu(x: string): string {
    return this.op('Mul', [x, this.op('Sigmoid', [x])]);
  }

  /** CLIP's activation: x * sigmoid(1.702 x). */
  quickGelu(x: string): string {
    const k = this.floats('quick_gelu.k', [], [1.702]);
    return this.op('Mul', [x, this.op('Sigmoid', [this.op('Mul', [x, k])])]);
  }

  layerNorm(x: string, dim: number, name: string, out?: string): string {
    const g = this.filled(`${name}.weight`, [dim], 1);
    const b = this.filled(`${name}.bias`, [dim], 0);
    return this.op('LayerNormalization', [x, g, b], { axis: { int: -1 }, epsilon: { float: 1e-5 } }, out);
  }

  encode(opset: number): Uint8Array {
    return encodeModel({
      graphName: this.name,
      opset,
      producer: 'atelier-models-generator',
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: this.inputs,
      outputs: this.outputs,
    });
  }
}

export { DataType };
