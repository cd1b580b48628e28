// VarBuilder: the model graph's view of a Checkpoint (implements WeightSource, src/io/weights.ts).
//
// Names are prefixed (`vb.pp("transformer").pp("h.0")`), every tensor is checked against the
// shape the config implies, and linears come back as the backend's LinearWeights:
//   - GPTQ when `<name>.qweight` exists: qweight/qzeros/g_idx int32, scales as raw f16 bits,
//     bias as f32; sizes and g_idx range validated; any group size dividing `in`, any g_idx order.
//   - dense otherwise: `<name>.weight` [out, in] (or [in, out] with spec.transposed, transposed
//     here), f16/bf16 kept as raw 16-bit patterns so the full model never doubles in memory,
//     f32 kept as f32; bias as f32 when spec.bias.
// Every float tensor is scanned for NaN/Inf once it is read (src/io/finite.ts): a non-finite
// weight is an error naming the tensor, not a silent wrong answer.
// Reading a tensor never keeps a second copy: the bytes are read once into their final array.
//
// API
//   class VarBuilder implements WeightSource
//     constructor(ckpt: Checkpoint, quantization: GptqQuantization | null, options?: VarBuilderOptions)
//     static open(dir, options?: VarBuilderOptions & { onProgress?: ProgressFn }): { vb; config: ModelConfig; checkpoint: Checkpoint }
//     static openSource(source: CheckpointSource, options?): the same from any source (src/io/source.ts)
//   interface VarBuilderOptions { allocate?: (byteLength, name) => Uint8Array }   read weights straight into caller memory
//     pp(prefix): VarBuilder; path(name): string; has(name): boolean
//     info(name): TensorInfo
//     f32(name, shape): Float32Array                  any float dtype → f32
//     half(name, shape): HalfTensor                   float tensor in its stored precision (for embeddings)
//     linear(name, spec: LinearSpec): LinearWeights
//     used(): ReadonlySet<string>                     full names read so far (shared by all pp() children)
//     unused(): string[]                              checkpoint tensors never read
import type { DenseWeights, GptqWeights, LinearWeights } from "../ops/backend.js";
import type { LinearSpec, WeightSource } from "./weights.js";
import { Checkpoint, type ProgressFn } from "./checkpoint.js";
import { DirectorySource } from "./directory.js";
import type { CheckpointSource } from "./source.js";
import type { RawTensor, TensorInfo } from "./safetensors.js";
import { bf16ArrayToF32, f16ArrayToF32 } from "./fp16.js";
import { describeNonFinite, firstNonFinite, type FloatKind } from "./finite.js";
import { loadModelConfigFrom, type GptqQuantization, type ModelConfig } from "../config.js";

/** A float tensor as stored: f16/bf16 raw bits, or f32. */
export interface HalfTensor {
  readonly dtype: "f32" | "f16" | "bf16";
  readonly shape: readonly number[];
  readonly data: Float32Array | Uint16Array;
}

const FLOAT_KINDS: Readonly<Record<string, FloatKind | undefined>> = { F16: "f16", BF16: "bf16", F32: "f32", F64: "f64" };

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export interface VarBuilderOptions {
  /**
   * Memory for tensors returned in their stored form (GPTQ tensors, f16/bf16/f32 dense weights,
   * half()): a Uint8Array of exactly `byteLength` bytes, 8-byte aligned — e.g. a view into a
   * WebAssembly memory, so weights are read once straight to where they will live. Default: a
   * fresh ArrayBuffer per tensor. Converted results (f32() of a 16-bit tensor) are always fresh.
   */
  readonly allocate?: (byteLength: number, name: string) => Uint8Array;
}

export class VarBuilder implements WeightSource {
  private readonly usedNames: Set<string>;

  constructor(
    readonly checkpoint: Checkpoint,
    readonly quantization: GptqQuantization | null,
    readonly options: VarBuilderOptions = {},
    readonly prefix = "",
    usedNames?: Set<string>,
  ) {
    this.usedNames = usedNames ?? new Set();
  }

  /** Opens a checkpoint directory together with its config.json. */
  static open(
    dir: string,
    options: VarBuilderOptions & { onProgress?: ProgressFn } = {},
  ): { vb: VarBuilder; config: ModelConfig; checkpoint: Checkpoint } {
    return VarBuilder.openSource(new DirectorySource(dir), options);
  }

  /** Opens the checkpoint files and config.json of `source`. */
  static openSource(
    source: CheckpointSource,
    options: VarBuilderOptions & { onProgress?: ProgressFn } = {},
  ): { vb: VarBuilder; config: ModelConfig; checkpoint: Checkpoint } {
    const config = loadModelConfigFrom(source);
    const checkpoint = Checkpoint.fromSource(source, options);
    return { vb: new VarBuilder(checkpoint, config.llm.quantization, options), config, checkpoint };
  }

  pp(prefix: string): VarBuilder {
    return new VarBuilder(this.checkpoint, this.quantization, this.options, this.path(prefix), this.usedNames);
  }

  path(name: string): string {
    return this.prefix === "" ? name : `${this.prefix}.${name}`;
  }

  has(name: string): boolean {
    return this.checkpoint.has(this.path(name));
  }

  info(name: string): TensorInfo {
    return this.checkpoint.info(this.path(name));
  }

  used(): ReadonlySet<string> {
    return this.usedNames;
  }

  unused(): string[] {
    return this.checkpoint.names().filter((n) => !this.usedNames.has(n));
  }

  /**
   * Reads `name` after checking its shape and dtype; into options.allocate's memory when `kept`
   * (the result is handed out as is) and the tensor needs no conversion.
   */
  private raw(name: string, shape: readonly number[], dtypes: readonly string[], kept = true): RawTensor {
    const full = this.path(name);
    const info = this.checkpoint.info(full);
    if (!sameShape(info.shape, shape)) {
      throw new Error(`${info.file}: tensor "${full}" has shape ${fmt(info.shape)}, but the config implies ${fmt(shape)} (${this.checkpoint.source.path("config.json")})`);
    }
    if (!dtypes.includes(info.dtype)) {
      throw new Error(`${info.file}: tensor "${full}" has dtype ${info.dtype}, expected ${dtypes.join(" or ")}`);
    }
    this.usedNames.add(full);
    const alloc = this.options.allocate;
    const dest = kept && alloc && info.dtype !== "F64" ? alloc(info.byteLength, full) : undefined;
    const t = this.checkpoint.read(full, dest);
    const kind = FLOAT_KINDS[info.dtype];
    if (kind) {
      // A NaN/Inf weight would only show up as garbage output much later: refuse it here.
      const data = t.data as Float32Array | Float64Array | Uint16Array;
      const i = firstNonFinite(data, kind);
      if (i >= 0) {
        throw new Error(`${info.file}: tensor "${full}" holds ${describeNonFinite(data, kind, i)} at element ${i} of ${data.length} (${info.dtype})`);
      }
    }
    return t;
  }

  half(name: string, shape: readonly number[]): HalfTensor {
    return this.float(name, shape, true);
  }

  private float(name: string, shape: readonly number[], kept: boolean): HalfTensor {
    const t = this.raw(name, shape, ["F16", "BF16", "F32", "F64"], kept);
    switch (t.info.dtype) {
      case "F16":
        return { dtype: "f16", shape, data: t.data as Uint16Array };
      case "BF16":
        return { dtype: "bf16", shape, data: t.data as Uint16Array };
      case "F32":
        return { dtype: "f32", shape, data: t.data as Float32Array };
      default:
        return { dtype: "f32", shape, data: Float32Array.from(t.data as Float64Array) };
    }
  }

  f32(name: string, shape: readonly number[]): Float32Array {
    const stored = this.checkpoint.info(this.path(name)).dtype;
    const t = this.float(name, shape, stored === "F32");
    if (t.dtype === "f16") return f16ArrayToF32(t.data as Uint16Array);
    if (t.dtype === "bf16") return bf16ArrayToF32(t.data as Uint16Array);
    return t.data as Float32Array;
  }

  linear(name: string, spec: LinearSpec): LinearWeights {
    const { inFeatures: K, outFeatures: N } = spec;
    if (!(Number.isSafeInteger(K) && K > 0 && Number.isSafeInteger(N) && N > 0)) {
      throw new Error(`linear "${this.path(name)}": invalid sizes in=${K} out=${N}`);
    }
    if (this.has(`${name}.qweight`)) return this.gptq(name, spec);
    return this.dense(name, spec);
  }

  private dense(name: string, spec: LinearSpec): DenseWeights {
    const { inFeatures: K, outFeatures: N } = spec;
    // A bare nn.Parameter used as a weight (transformer.visual.proj) is the tensor `name` itself.
    const wName = this.has(`${name}.weight`) ? `${name}.weight` : this.has(name) ? name : null;
    if (wName === null) {
      throw new Error(`checkpoint ${this.checkpoint.dir}: missing tensor "${this.path(name)}.weight" (nor "${this.path(name)}.qweight")`);
    }
    const h = this.float(wName, spec.transposed ? [K, N] : [N, K], !spec.transposed);
    let weight = h.data;
    if (spec.transposed) weight = transpose(h.data, K, N);
    const bias = spec.bias ? this.f32(`${name}.bias`, [N]) : undefined;
    return { kind: "dense", inFeatures: K, outFeatures: N, weight, dtype: h.dtype, bias };
  }

  private gptq(name: string, spec: LinearSpec): GptqWeights {
    const { inFeatures: K, outFeatures: N } = spec;
    const where = `linear "${this.path(name)}"`;
    const q = this.quantization;
    if (q === null) {
      throw new Error(`${where}: the checkpoint holds GPTQ tensors but config.json has no quantization_config (nor quantize_config.json)`);
    }
    if (q.bits !== 4) throw new Error(`${where}: GPTQ with ${q.bits} bits is not supported (only 4-bit)`);
    const groupSize = q.groupSize === -1 ? K : q.groupSize;
    if (K % groupSize !== 0) throw new Error(`${where}: group_size ${groupSize} does not divide in_features ${K}`);
    // 8 nibbles per int32, along `in` for qweight and along `out` for qzeros.
    if (K % 8 !== 0 || N % 8 !== 0) throw new Error(`${where}: in ${K} and out ${N} must be multiples of 8 for 4-bit packing`);
    const G = K / groupSize;
    const qweight = this.raw(`${name}.qweight`, [K / 8, N], ["I32"]).data as Int32Array;
    const qzeros = this.raw(`${name}.qzeros`, [G, N / 8], ["I32"]).data as Int32Array;
    const scales = this.raw(`${name}.scales`, [G, N], ["F16"]).data as Uint16Array;
    const gIdx = this.raw(`${name}.g_idx`, [K], ["I32"]).data as Int32Array;
    for (let i = 0; i < K; i++) {
      if (gIdx[i] < 0 || gIdx[i] >= G) {
        throw new Error(`${this.checkpoint.info(this.path(`${name}.g_idx`)).file}: tensor "${this.path(`${name}.g_idx`)}"[${i}] = ${gIdx[i]}, outside the ${G} groups`);
      }
    }
    let bias: Float32Array | undefined;
    if (this.has(`${name}.bias`)) bias = this.f32(`${name}.bias`, [N]);
    else if (spec.bias) throw new Error(`checkpoint ${this.checkpoint.dir}: missing tensor "${this.path(`${name}.bias`)}"`);
    return { kind: "gptq", inFeatures: K, outFeatures: N, bits: 4, groupSize, qweight, qzeros, scales, gIdx, bias };
  }
}

/** [rows, cols] → [cols, rows]. */
function transpose<T extends Float32Array | Uint16Array>(a: T, rows: number, cols: number): T {
  const out = new (a.constructor as { new (n: number): T })(a.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  }
  return out;
}
