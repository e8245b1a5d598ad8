// A minimal writer for the ONNX protobuf format (onnx/onnx.proto, proto2), enough to emit the tiny test models and the
// benchmark's larger random-weight UNet without Python. Field numbers are those of onnx.proto; onnxruntime validates
// every model we write when it loads it, and test/inference checks that it does.

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT32: 6, INT64: 7 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType values used here. */
const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** Protobuf encoder: varint (wire type 0), 32-bit (wire type 5) and length-delimited (wire type 2) fields. */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  private varint(value: bigint): void {
    // int64 fields are two's complement on the wire: a negative value takes 10 bytes.
    let v = BigInt.asUintN(64, value);
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.push(Uint8Array.from(out));
  }

  private tag(field: number, wireType: 0 | 2 | 5): void {
    this.varint(BigInt((field << 3) | wireType));
  }

  int(field: number, value: number | bigint): this {
    this.tag(field, 0);
    this.varint(BigInt(value));
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2);
    this.varint(BigInt(value.length));
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
}

export type TensorData = Float32Array | Int32Array | BigInt64Array;

export interface TensorValue {
  readonly dims: readonly number[];
  readonly data: TensorData;
}

function dataTypeOf(data: TensorData): DataTypeCode {
  if (data instanceof Float32Array) return DataType.FLOAT;
  if (data instanceof Int32Array) return DataType.INT32;
  return DataType.INT64;
}

/** raw_data is little-endian by the ONNX spec; typed arrays are platform-endian, so write explicitly. */
function littleEndianBytes(data: TensorData): Uint8Array {
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else if (data instanceof Int32Array) data.forEach((v, i) => view.setInt32(i * 4, v, true));
  else data.forEach((v, i) => view.setBigInt64(i * 8, v, true));
  return out;
}

export function writeTensor(w: ProtoWriter, name: string, t: TensorValue): void {
  const expected = t.dims.reduce((a, b) => a * b, 1);
  if (expected !== t.data.length)
    throw new RangeError(`tensor ${name}: dims ${t.dims.join('x')} need ${expected} values, got ${t.data.length}`);
  for (const d of t.dims) w.int(1, d);
  w.int(2, dataTypeOf(t.data));
  w.string(8, name);
  w.bytes(9, littleEndianBytes(t.data));
}

export type AttributeValue =
  | { readonly int: number }
  | { readonly float: number }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly string: string }
  | { readonly tensor: TensorValue };

function writeAttribute(w: ProtoWriter, name: string, value: AttributeValue): void {
  w.string(1, name);
  if ('int' in value) w.int(3, value.int).int(20, AttributeType.INT);
  else if ('float' in value) w.float(2, value.float).int(20, AttributeType.FLOAT);
  else if ('ints' in value) {
    for (const v of value.ints) w.int(8, v);
    w.int(20, AttributeType.INTS);
  } else if ('floats' in value) {
    for (const v of value.floats) w.float(7, v);
    w.int(20, AttributeType.FLOATS);
  } else if ('string' in value) w.string(4, value.string).int(20, AttributeType.STRING);
  else {
    const tensor = value.tensor;
    w.message(5, (t) => writeTensor(t, '', tensor)).int(20, AttributeType.TENSOR);
  }
}

export interface NodeSpec {
  readonly opType: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

/** A graph input or output: element type and shape, each dimension a size or a symbolic name such as `batch`. */
export interface ValueInfo {
  readonly name: string;
  readonly elemType: DataTypeCode;
  readonly shape: readonly (number | string)[];
}

function writeValueInfo(w: ProtoWriter, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensorType) => {
      tensorType.int(1, v.elemType);
      tensorType.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

export interface ModelSpecProto {
  readonly graphName: string;
  readonly opset: number;
  readonly producer: string;
  readonly nodes: readonly NodeSpec[];
  readonly initializers: ReadonlyMap<string, TensorValue>;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
}

/** IR version 8 goes with opsets up to 18 (onnx/docs/Versioning.md). */
const IR_VERSION = 8;

export function encodeModel(spec: ModelSpecProto): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, IR_VERSION);
  w.string(2, spec.producer);
  w.message(8, (o) => o.string(1, '').int(2, spec.opset));
  w.message(7, (g) => {
    for (const n of spec.nodes) {
      g.message(1, (node) => {
        for (const i of n.inputs) node.string(1, i);
        for (const o of n.outputs) node.string(2, o);
        node.string(3, n.name);
        node.string(4, n.opType);
        for (const [name, value] of Object.entries(n.attributes))
          node.message(5, (a) => writeAttribute(a, name, value));
      });
    }
    g.string(2, spec.graphName);
    for (const [name, t] of spec.initializers) g.message(5, (tensor) => writeTensor(tensor, name, t));
    for (const v of spec.inputs) g.message(11, (vi) => writeValueInfo(vi, v));
    for (const v of spec.outputs) g.message(12, (vi) => writeValueInfo(vi, v));
  });
  return w.finish();
}
