// Synthetic Qwen-VL-Chat checkpoints in the exact published layout, for any config.
//
//   npx node dist/tools/make-checkpoint.js --config tiny|full|path/to/config.json --out DIR
//       [--seed N] [--dtype int4|f16|bf16] [--shard-size BYTES]
//
// Presets: tiny (tiny-a's config), full (the published config.json), in tools/configs/. For a
// preset in int4 without --shard-size, tensors go to the same shard files as in the original.
//
// int4 reproduces Qwen-VL-Chat-Int4 (LLM linears GPTQ: qweight/qzeros/scales/g_idx/bias, all
// else fp16); f16/bf16 reproduce the float Qwen-VL-Chat layout (`.weight`, and `.bias` where
// the float model has one: c_attn always, the rest only when no_bias is false,
// modeling_qwen.py:128-131, 322-329). Files written: shards + model.safetensors.index.json
// (or a lone model.safetensors when everything fits one shard, as transformers does),
// config.json, generation_config.json, and quantize_config.json for int4.
//
// Values are deterministic in (seed, tensor name) and sane for a random model: norms ≈ 1,
// embeddings ≈ 0.02, weights ≈ 0.5/sqrt(in) so activations neither vanish nor overflow.
// Data is generated and written in 16 MB slices: memory stays small for the 9.7 GB model.
//
// API (also used by tests and tools/load-checkpoint.ts)
//   type Module = { kind: "linear", name, inFeatures, outFeatures, bias, quantizable, transposed?, bare? }
//               | { kind: "tensor", name, shape, init: Init }
//   modelLayout(config: ModelConfig): Module[]                the model's parameters in file order
//   tensorList(config: ModelConfig, dtype: WeightDType): TensorPlan[]   what goes on disk
//   planShards(plans, shardSize, shardMap?): { names: string[]; shards: TensorPlan[][] }
//   writeSyntheticCheckpoint(opts: WriteOptions): { files: string[]; totalBytes: number; tensors: number }
import * as fs from "node:fs";
import * as path from "node:path";
import { packageFile } from "../src/package-files.js";
import { pathToFileURL } from "node:url";
import { parseModelConfig, type ModelConfig } from "../src/config.js";
import { encodeHeader, DTYPE_BYTES, type DType } from "../src/io/safetensors.js";
import { f32ToBf16, f32ToF16 } from "../src/io/fp16.js";

export type WeightDType = "int4" | "f16" | "bf16";

/** Uniform values in [mean − halfWidth, mean + halfWidth]. */
export interface Init {
  readonly mean: number;
  readonly halfWidth: number;
}

export type Module =
  | {
      readonly kind: "linear";
      readonly name: string;
      readonly inFeatures: number;
      readonly outFeatures: number;
      /** The float model's nn.Linear has a bias (GPTQ linears always store one). */
      readonly bias: boolean;
      /** Stored as GPTQ in the Int4 checkpoint. */
      readonly quantizable: boolean;
      /** Float weight stored [in, out] (used as x @ W). */
      readonly transposed?: boolean;
      /** The weight is the tensor `name` itself, not `name.weight` (a bare nn.Parameter). */
      readonly bare?: boolean;
    }
  | { readonly kind: "tensor"; readonly name: string; readonly shape: readonly number[]; readonly init: Init };

type Fill =
  | { readonly kind: "float"; readonly init: Init }
  | { readonly kind: "random-u32" }
  | { readonly kind: "const-u32"; readonly value: number }
  | { readonly kind: "g-idx"; readonly groupSize: number };

export interface TensorPlan {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly fill: Fill;
}

// Uniform on [−a, a] has std a/√3; these helpers take the wanted std.
const SQRT3 = Math.sqrt(3);
const noise = (std: number): Init => ({ mean: 0, halfWidth: std * SQRT3 });
const around = (mean: number, std: number): Init => ({ mean, halfWidth: std * SQRT3 });
const NORM_WEIGHT = around(1, 0.02);
const NORM_BIAS = noise(0.02);

/** Every parameter of QWenLMHeadModel (with its visual tower), in the order tiny-a's files use. */
export function modelLayout(config: ModelConfig): Module[] {
  const { llm, visual: v } = config;
  const H = llm.hiddenSize;
  const P = llm.projectionSize;
  const F = llm.mlpWidth;
  const lin = (name: string, inFeatures: number, outFeatures: number, bias: boolean, quantizable = false): Module => ({
    kind: "linear",
    name,
    inFeatures,
    outFeatures,
    bias,
    quantizable,
  });
  const tensor = (name: string, shape: number[], init: Init): Module => ({ kind: "tensor", name, shape, init });
  const m: Module[] = [];

  // modeling_qwen.py:453 (wte), 340-351 (block), 498 (ln_f), 774 (lm_head).
  m.push(tensor("transformer.wte.weight", [llm.vocabSize, H], noise(0.02)));
  for (let l = 0; l < llm.numLayers; l++) {
    const p = `transformer.h.${l}`;
    m.push(tensor(`${p}.ln_1.weight`, [H], NORM_WEIGHT));
    m.push(tensor(`${p}.ln_2.weight`, [H], NORM_WEIGHT));
    // c_proj is declared nn.Linear(hidden_size, projection_size) (modeling_qwen.py:130).
    m.push(lin(`${p}.attn.c_attn`, H, 3 * P, true, true));
    m.push(lin(`${p}.attn.c_proj`, H, P, !llm.noBias, true));
    m.push(lin(`${p}.mlp.w1`, H, F, !llm.noBias, true));
    m.push(lin(`${p}.mlp.w2`, H, F, !llm.noBias, true));
    m.push(lin(`${p}.mlp.c_proj`, F, H, !llm.noBias, true));
  }
  m.push(tensor("transformer.ln_f.weight", [H], NORM_WEIGHT));
  m.push(lin("lm_head", H, llm.vocabSize, false));

  // visual.py:363-390 (VisionTransformer), 255-270 (resblock), 99-124 (Resampler).
  const W = v.width;
  const D = v.outputDim;
  const vp = "transformer.visual";
  m.push(tensor(`${vp}.conv1.weight`, [W, 3, v.patchSize, v.patchSize], noise(0.5 / Math.sqrt(3 * v.patchSize ** 2))));
  // 256 rows regardless of image size (visual.py:367), scaled by width^-0.5.
  m.push(tensor(`${vp}.positional_embedding`, [256, W], noise(W ** -0.5)));
  m.push(tensor(`${vp}.ln_pre.weight`, [W], NORM_WEIGHT));
  m.push(tensor(`${vp}.ln_pre.bias`, [W], NORM_BIAS));
  for (let l = 0; l < v.layers; l++) {
    const p = `${vp}.transformer.resblocks.${l}`;
    m.push(tensor(`${p}.ln_1.weight`, [W], NORM_WEIGHT));
    m.push(tensor(`${p}.ln_1.bias`, [W], NORM_BIAS));
    m.push(tensor(`${p}.ln_2.weight`, [W], NORM_WEIGHT));
    m.push(tensor(`${p}.ln_2.bias`, [W], NORM_BIAS));
    m.push(lin(`${p}.attn.in_proj`, W, 3 * W, true));
    m.push(lin(`${p}.attn.out_proj`, W, W, true));
    m.push(lin(`${p}.mlp.c_fc`, W, v.mlpWidth, true));
    m.push(lin(`${p}.mlp.c_proj`, v.mlpWidth, W, true));
  }
  const ap = `${vp}.attn_pool`;
  m.push(tensor(`${ap}.query`, [v.nQueries, D], noise(0.02)));
  m.push(tensor(`${ap}.pos_embed`, [v.nQueries, D], noise(0.5)));
  // kv_proj exists only when the widths differ (visual.py:119-122).
  if (W !== D) m.push(lin(`${ap}.kv_proj`, W, D, false));
  m.push(tensor(`${ap}.ln_q.weight`, [D], NORM_WEIGHT));
  m.push(tensor(`${ap}.ln_q.bias`, [D], NORM_BIAS));
  m.push(tensor(`${ap}.ln_kv.weight`, [D], NORM_WEIGHT));
  m.push(tensor(`${ap}.ln_kv.bias`, [D], NORM_BIAS));
  // nn.MultiheadAttention keeps q/k/v packed as bare parameters.
  m.push(tensor(`${ap}.attn.in_proj_weight`, [3 * D, D], noise(0.5 / Math.sqrt(D))));
  m.push(tensor(`${ap}.attn.in_proj_bias`, [3 * D], noise(0.02)));
  m.push(lin(`${ap}.attn.out_proj`, D, D, true));
  m.push(tensor(`${vp}.ln_post.weight`, [D], NORM_WEIGHT));
  m.push(tensor(`${vp}.ln_post.bias`, [D], NORM_BIAS));
  m.push({ kind: "linear", name: `${vp}.proj`, inFeatures: D, outFeatures: D, bias: false, quantizable: false, transposed: true, bare: true });
  return m;
}

/** The tensors on disk for `config` in weight format `dtype`, in file order. */
export function tensorList(config: ModelConfig, dtype: WeightDType): TensorPlan[] {
  const floatType: DType = dtype === "bf16" ? "BF16" : "F16";
  const q = config.llm.quantization;
  if (dtype === "int4" && (q === null || q.bits !== 4)) {
    throw new Error(`--dtype int4 needs a 4-bit quantization_config in the config (got ${q === null ? "none" : `${q.bits} bits`})`);
  }
  const out: TensorPlan[] = [];
  for (const m of modelLayout(config)) {
    if (m.kind === "tensor") {
      out.push({ name: m.name, dtype: floatType, shape: m.shape, fill: { kind: "float", init: m.init } });
      continue;
    }
    const K = m.inFeatures;
    const N = m.outFeatures;
    if (dtype === "int4" && m.quantizable) {
      const g = q!.groupSize === -1 ? K : q!.groupSize;
      const G = K / g;
      // Target weight std 0.5/sqrt(in); q − 8 with q uniform on 0..15 has std sqrt(255/12).
      const scale = 0.5 / Math.sqrt(K) / Math.sqrt(255 / 12);
      out.push({ name: `${m.name}.qweight`, dtype: "I32", shape: [K / 8, N], fill: { kind: "random-u32" } });
      // Symmetric AutoGPTQ stores zero 2^(bits−1) − 1 = 7 in every nibble (the +1 is added back
      // when dequantising, conformance README "GPTQ").
      out.push({ name: `${m.name}.qzeros`, dtype: "I32", shape: [G, N / 8], fill: { kind: "const-u32", value: 0x77777777 } });
      out.push({ name: `${m.name}.scales`, dtype: "F16", shape: [G, N], fill: { kind: "float", init: around(scale, scale / 4) } });
      out.push({ name: `${m.name}.g_idx`, dtype: "I32", shape: [K], fill: { kind: "g-idx", groupSize: g } });
      out.push({ name: `${m.name}.bias`, dtype: "F16", shape: [N], fill: { kind: "float", init: noise(0.01) } });
      continue;
    }
    const wName = m.bare ? m.name : `${m.name}.weight`;
    out.push({
      name: wName,
      dtype: floatType,
      shape: m.transposed ? [K, N] : [N, K],
      fill: { kind: "float", init: noise(m.name === "lm_head" ? 0.02 : 0.5 / Math.sqrt(K)) },
    });
    if (m.bias) out.push({ name: `${m.name}.bias`, dtype: floatType, shape: [N], fill: { kind: "float", init: noise(0.02) } });
  }
  return out;
}

/** 32-bit FNV-1a of the seed and name: each tensor gets its own stream, independent of order. */
function streamSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** mulberry32: small, fast, and good enough for weights nobody will train. */
class Rng {
  constructor(private s: number) {}
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
}

const SLICE_BYTES = 16 << 20;

/** Streams one tensor's bytes to `fd` in slices. */
function writeTensor(fd: number, t: TensorPlan, seed: number, slice: ArrayBuffer): void {
  const rng = new Rng(streamSeed(seed, t.name));
  const n = t.shape.reduce((a, b) => a * b, 1);
  const esize = DTYPE_BYTES[t.dtype];
  const perSlice = SLICE_BYTES / esize;
  let table: Uint16Array | null = null;
  if (t.fill.kind === "float") {
    // 65,536 evenly spaced values of the target range, pre-rounded: one random 16-bit index per value.
    const { mean, halfWidth } = t.fill.init;
    const conv = t.dtype === "BF16" ? f32ToBf16 : f32ToF16;
    table = new Uint16Array(65536);
    for (let k = 0; k < 65536; k++) table[k] = conv(mean + halfWidth * ((2 * (k + 0.5)) / 65536 - 1));
  }
  for (let start = 0; start < n; start += perSlice) {
    const count = Math.min(perSlice, n - start);
    if (esize === 2) {
      const u16 = new Uint16Array(slice, 0, count);
      for (let i = 0; i < count; i += 2) {
        const r = rng.next();
        u16[i] = table![r & 0xffff];
        if (i + 1 < count) u16[i + 1] = table![r >>> 16];
      }
    } else if (esize === 4) {
      const i32 = new Int32Array(slice, 0, count);
      const f = t.fill;
      if (f.kind === "random-u32") for (let i = 0; i < count; i++) i32[i] = rng.next() | 0;
      else if (f.kind === "const-u32") i32.fill(f.value | 0);
      else if (f.kind === "g-idx") for (let i = 0; i < count; i++) i32[i] = Math.floor((start + i) / f.groupSize);
      else throw new Error(`tensor ${t.name}: float fill for 4-byte dtype ${t.dtype} is not produced by this writer`);
    } else {
      throw new Error(`tensor ${t.name}: dtype ${t.dtype} is not produced by this writer`);
    }
    const bytes = new Uint8Array(slice, 0, count * esize);
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
  }
}

/**
 * Splits `plans` into shard files: by `shardMap` (tensor → file) when given, else greedily in
 * order with at most `shardSize` data bytes per shard. One shard is named model.safetensors.
 */
export function planShards(
  plans: readonly TensorPlan[],
  shardSize: number,
  shardMap?: Readonly<Record<string, string>>,
): { names: string[]; shards: TensorPlan[][] } {
  let shards: TensorPlan[][];
  let names: string[];
  if (shardMap) {
    const map = shardMap;
    const missing = plans.filter((t) => !(t.name in map));
    const have = new Set(plans.map((t) => t.name));
    const extra = Object.keys(map).filter((n) => !have.has(n));
    if (missing.length > 0 || extra.length > 0) {
      throw new Error(
        `shard map does not fit the config: ${missing.length} tensors unmapped (${missing.slice(0, 2).map((t) => t.name).join(", ")}), ` +
          `${extra.length} mapped but absent (${extra.slice(0, 2).join(", ")})`,
      );
    }
    names = [...new Set(Object.values(map))].sort();
    shards = names.map((f) => plans.filter((t) => map[t.name] === f));
  } else {
    // Greedy split in file order, like transformers' shard_checkpoint.
    shards = [[]];
    let size = 0;
    for (const t of plans) {
      const b = t.shape.reduce((a, c) => a * c, 1) * DTYPE_BYTES[t.dtype];
      if (size + b > shardSize && shards[shards.length - 1].length > 0) {
        shards.push([]);
        size = 0;
      }
      shards[shards.length - 1].push(t);
      size += b;
    }
    const pad = (k: number) => String(k).padStart(5, "0");
    names = shards.length === 1 ? ["model.safetensors"] : shards.map((_, k) => `model-${pad(k + 1)}-of-${pad(shards.length)}.safetensors`);
  }

  return { names, shards };
}

export interface WriteOptions {
  /** Parsed config.json content (written back verbatim, adjusted for the dtype). */
  readonly configJson: Record<string, unknown>;
  readonly generationJson: Record<string, unknown>;
  readonly out: string;
  readonly seed: number;
  readonly dtype: WeightDType;
  /** Largest shard data size; a tensor bigger than this gets a shard of its own. */
  readonly shardSize: number;
  /**
   * Shard file of every tensor (an index's weight_map), overriding `shardSize`: reproduces a
   * published checkpoint's split exactly. Must name every tensor.
   */
  readonly shardMap?: Readonly<Record<string, string>>;
  readonly onTensor?: (name: string, index: number, total: number) => void;
}

export function writeSyntheticCheckpoint(opts: WriteOptions): { files: string[]; totalBytes: number; tensors: number } {
  const configJson: Record<string, unknown> = structuredClone(opts.configJson);
  if (opts.dtype !== "int4") {
    delete configJson.quantization_config;
    configJson.fp16 = opts.dtype === "f16";
    configJson.bf16 = opts.dtype === "bf16";
    configJson.torch_dtype = opts.dtype === "f16" ? "float16" : "bfloat16";
  }
  const config = parseModelConfig(opts.configJson, "config");
  const plans = tensorList(config, opts.dtype);

  const { names, shards } = planShards(plans, opts.shardSize, opts.shardMap);

  fs.mkdirSync(opts.out, { recursive: true });
  const slice = new ArrayBuffer(SLICE_BYTES);
  const weightMap: Record<string, string> = {};
  let totalBytes = 0;
  let done = 0;
  for (let s = 0; s < shards.length; s++) {
    // transformers writes metadata {"format": "pt"} into every shard (modeling_utils save_pretrained).
    const { header, dataBytes } = encodeHeader(shards[s], { format: "pt" });
    const fd = fs.openSync(path.join(opts.out, names[s]), "w");
    try {
      fs.writeSync(fd, header);
      for (const t of shards[s]) {
        opts.onTensor?.(t.name, done++, plans.length);
        writeTensor(fd, t, opts.seed, slice);
        weightMap[t.name] = names[s];
      }
    } finally {
      fs.closeSync(fd);
    }
    totalBytes += dataBytes;
  }
  if (shards.length > 1) {
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
    const index = { metadata: { total_size: totalBytes }, weight_map: sorted };
    fs.writeFileSync(path.join(opts.out, "model.safetensors.index.json"), JSON.stringify(index, null, 2) + "\n");
  } else {
    fs.rmSync(path.join(opts.out, "model.safetensors.index.json"), { force: true });
  }
  fs.writeFileSync(path.join(opts.out, "config.json"), JSON.stringify(configJson, null, 2) + "\n");
  fs.writeFileSync(path.join(opts.out, "generation_config.json"), JSON.stringify(opts.generationJson, null, 2) + "\n");
  const qc = configJson.quantization_config as Record<string, unknown> | undefined;
  const qfile = path.join(opts.out, "quantize_config.json");
  if (opts.dtype === "int4" && qc) {
    // quantize_config.json is quantization_config without transformers' quant_method key.
    const { quant_method: _, ...rest } = qc;
    fs.writeFileSync(qfile, JSON.stringify(rest, null, 2) + "\n");
  } else {
    fs.rmSync(qfile, { force: true });
  }
  return { files: names, totalBytes, tensors: plans.length };
}

/** tools/configs/ of this package, from either tools/ (ts) or dist/tools/ (compiled js). */
export function configsDir(): string {
  return path.dirname(packageFile("tools/configs/tiny-a.json"));
}

// Presets: tiny = the tiny-a conformance checkpoint; full = the published Qwen-VL-Chat-Int4.
// For int4 without --shard-size, each preset reuses its checkpoint's own shard split (the
// index's weight_map), so file names and tensor placement match the originals exactly.
export const PRESETS: Record<string, { file: string; index: string }> = {
  tiny: { file: "tiny-a.json", index: "tiny-a.index.json" },
  full: { file: "qwen-vl-chat-int4.json", index: "qwen-vl-chat-int4.index.json" },
};
/** transformers' "2GB" shards (2·10^9 bytes), what the published model was saved with. */
export const DEFAULT_SHARD_SIZE = 2_000_000_000;

function main(argv: string[]): void {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
      throw new Error(`usage: make-checkpoint --config tiny|full|config.json --out DIR [--seed N] [--dtype int4|f16|bf16] [--shard-size BYTES] (bad argument ${argv[i]})`);
    }
    args.set(argv[i].slice(2), argv[i + 1]);
  }
  const cfgArg = args.get("config");
  const out = args.get("out");
  if (!cfgArg || !out) throw new Error("make-checkpoint: --config and --out are required");
  const preset = PRESETS[cfgArg];
  const cfgFile = preset ? path.join(configsDir(), preset.file) : cfgArg;
  const configJson = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
  const generationJson = JSON.parse(fs.readFileSync(path.join(configsDir(), "generation_config.json"), "utf8"));
  const dtype = (args.get("dtype") ?? "int4") as WeightDType;
  if (!["int4", "f16", "bf16"].includes(dtype)) throw new Error(`--dtype must be int4, f16 or bf16, got ${dtype}`);
  const seed = Number(args.get("seed") ?? "0");
  const shardSize = Number(args.get("shard-size") ?? DEFAULT_SHARD_SIZE);
  const shardMap =
    preset && dtype === "int4" && !args.has("shard-size")
      ? (JSON.parse(fs.readFileSync(path.join(configsDir(), preset.index), "utf8")).weight_map as Record<string, string>)
      : undefined;
  if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(shardSize) || shardSize <= 0) {
    throw new Error("--seed and --shard-size must be integers (shard size > 0)");
  }
  const t0 = performance.now();
  let last = 0;
  const r = writeSyntheticCheckpoint({
    configJson,
    generationJson,
    out,
    seed,
    dtype,
    shardSize,
    shardMap,
    onTensor: (name, i, n) => {
      const now = performance.now();
      if (now - last > 2000) {
        last = now;
        process.stderr.write(`[${((now - t0) / 1000).toFixed(1)} s] ${i}/${n} ${name}\n`);
      }
    },
  });
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `wrote ${r.tensors} tensors, ${r.totalBytes} bytes in ${r.files.length} file(s) to ${out} in ${secs.toFixed(1)} s ` +
      `(${(r.totalBytes / secs / 1e9).toFixed(2)} GB/s), peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
