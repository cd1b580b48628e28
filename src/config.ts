// Typed model configuration, parsed once from a Qwen-VL-Chat checkpoint directory.
//
// config.json (schema: /work/shared/upstream/configuration_qwen.py QWenConfig; the `visual` block
// is passed as keyword arguments to VisionTransformer, visual.py:332) gives `QwenConfig` and
// `VisualConfig`; generation_config.json gives `GenerationDefaults`. GPTQ settings come from
// config.json's `quantization_config`, or quantize_config.json when config.json has none.
// Every field is checked; a missing or mistyped field throws naming the field and the file.
//
// API
//   interface GptqQuantization { bits, groupSize, descAct, sym }
//   interface QwenConfig { ... }            (LLM, see below)
//   interface VisualConfig { ... }          (vision tower)
//   interface ModelConfig { llm: QwenConfig; visual: VisualConfig }
//   interface GenerationDefaults { ... }
//   parseModelConfig(json: unknown, file?: string, quantizeJson?: unknown): ModelConfig
//   loadModelConfig(dir: string): ModelConfig
//   parseGenerationConfig(json: unknown, file?: string): GenerationDefaults
//   loadGenerationDefaults(dir: string): GenerationDefaults
import { DirectorySource } from "./io/directory.js";
import type { CheckpointSource } from "./io/source.js";

export interface GptqQuantization {
  readonly bits: number;
  /** Input rows per quantisation group; AutoGPTQ's −1 (one group) is resolved per layer by the loader. */
  readonly groupSize: number;
  readonly descAct: boolean;
  readonly sym: boolean;
}

export interface QwenConfig {
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** Per-head width (modeling_qwen.py:121: projection_size = kv_channels · num_attention_heads). */
  readonly kvChannels: number;
  /** kvChannels · numHeads: width of q, k and v each. */
  readonly projectionSize: number;
  /** As stored in config.json; the MLP's real width is half of it. */
  readonly intermediateSize: number;
  /** intermediate_size / 2: w1, w2 are hidden → ff and c_proj ff → hidden (modeling_qwen.py:322-329). */
  readonly mlpWidth: number;
  readonly vocabSize: number;
  /** Training context; dynamic NTK and log-n scaling start past it. */
  readonly seqLength: number;
  readonly rotaryEmbBase: number;
  readonly rotaryPct: number;
  readonly layerNormEpsilon: number;
  readonly useDynamicNtk: boolean;
  readonly useLognAttn: boolean;
  readonly maxPositionEmbeddings: number;
  /** When true, attn.c_proj, mlp.w1/w2/c_proj have no bias in the float model (c_attn always has one). */
  readonly noBias: boolean;
  readonly torchDtype: string;
  readonly quantization: GptqQuantization | null;
}

export interface VisualConfig {
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  readonly mlpRatio: number;
  /** int(width · mlp_ratio), visual.py:264. */
  readonly mlpWidth: number;
  readonly imageSize: number;
  readonly patchSize: number;
  /** Width of the resampler and of the image embeddings handed to the LLM. */
  readonly outputDim: number;
  /** Token id of `<img>`; `</img>` and the padding token follow it. */
  readonly imageStartId: number;
  /** Resampler queries = image embeddings per image (VisionTransformer default, visual.py:342). */
  readonly nQueries: number;
  /** Resampler heads: output_dim // 128 (visual.py:385). */
  readonly poolHeads: number;
}

export interface ModelConfig {
  readonly llm: QwenConfig;
  readonly visual: VisualConfig;
}

export interface GenerationDefaults {
  readonly chatFormat: string;
  readonly eosTokenId: number;
  readonly padTokenId: number | null;
  readonly maxWindowSize: number;
  readonly maxNewTokens: number | null;
  readonly doSample: boolean;
  readonly topK: number;
  readonly topP: number;
  readonly temperature: number;
  readonly repetitionPenalty: number;
}

type Obj = Record<string, unknown>;

class Fields {
  constructor(
    private readonly obj: Obj,
    readonly where: string,
  ) {}

  private get(key: string): unknown {
    if (!(key in this.obj)) throw new Error(`${this.where}: missing field "${key}"`);
    return this.obj[key];
  }

  int(key: string, min = 0): number {
    const v = this.get(key);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
      throw new Error(`${this.where}: field "${key}" must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  num(key: string, fallback?: number): number {
    if (fallback !== undefined && (!(key in this.obj) || this.obj[key] === null)) return fallback;
    const v = this.get(key);
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new Error(`${this.where}: field "${key}" must be a number, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    if (fallback !== undefined && !(key in this.obj)) return fallback;
    const v = this.get(key);
    if (typeof v !== "boolean") throw new Error(`${this.where}: field "${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str(key: string, fallback?: string): string {
    if (fallback !== undefined && !(key in this.obj)) return fallback;
    const v = this.get(key);
    if (typeof v !== "string") throw new Error(`${this.where}: field "${key}" must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  /** Integer or null/absent. */
  optInt(key: string): number | null {
    if (!(key in this.obj) || this.obj[key] === null) return null;
    return this.int(key);
  }

  object(key: string): Fields {
    const v = this.get(key);
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new Error(`${this.where}: field "${key}" must be an object, got ${JSON.stringify(v)}`);
    }
    return new Fields(v as Obj, `${this.where} ${key}`);
  }

  has(key: string): boolean {
    return key in this.obj && this.obj[key] !== null;
  }
}

function asObject(json: unknown, file: string): Obj {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new Error(`${file}: must be a JSON object`);
  return json as Obj;
}

function readJson(file: string, read: () => string): unknown {
  let text: string;
  try {
    text = read();
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

function parseQuantization(f: Fields): GptqQuantization {
  const method = f.str("quant_method", "gptq");
  if (method !== "gptq") throw new Error(`${f.where}: quant_method "${method}" is not supported (only gptq)`);
  const bits = f.int("bits", 1);
  const groupSize = f.int("group_size", -1);
  if (groupSize === 0) throw new Error(`${f.where}: field "group_size" must be -1 or positive, got 0`);
  return { bits, groupSize, descAct: f.bool("desc_act", false), sym: f.bool("sym", true) };
}

/**
 * Parses config.json's content. `quantizeJson` is quantize_config.json's content, consulted only
 * when config.json carries no `quantization_config`.
 */
export function parseModelConfig(json: unknown, file = "config.json", quantizeJson?: unknown): ModelConfig {
  const f = new Fields(asObject(json, file), file);
  const hiddenSize = f.int("hidden_size", 1);
  const numHeads = f.int("num_attention_heads", 1);
  const kvChannels = f.int("kv_channels", 1);
  const intermediateSize = f.int("intermediate_size", 2);
  if (intermediateSize % 2 !== 0) throw new Error(`${file}: field "intermediate_size" must be even, got ${intermediateSize}`);
  const rotaryPct = f.num("rotary_pct");
  if (!(rotaryPct > 0 && rotaryPct <= 1)) throw new Error(`${file}: field "rotary_pct" must be in (0, 1], got ${rotaryPct}`);

  let quantization: GptqQuantization | null = null;
  if (f.has("quantization_config")) quantization = parseQuantization(f.object("quantization_config"));
  else if (quantizeJson !== undefined) {
    quantization = parseQuantization(new Fields(asObject(quantizeJson, "quantize_config.json"), "quantize_config.json"));
  }

  const llm: QwenConfig = {
    hiddenSize,
    numLayers: f.int("num_hidden_layers", 1),
    numHeads,
    kvChannels,
    projectionSize: kvChannels * numHeads,
    intermediateSize,
    mlpWidth: intermediateSize / 2,
    vocabSize: f.int("vocab_size", 1),
    seqLength: f.int("seq_length", 1),
    rotaryEmbBase: f.num("rotary_emb_base"),
    rotaryPct,
    layerNormEpsilon: f.num("layer_norm_epsilon"),
    useDynamicNtk: f.bool("use_dynamic_ntk"),
    useLognAttn: f.bool("use_logn_attn"),
    maxPositionEmbeddings: f.int("max_position_embeddings", 1),
    noBias: f.bool("no_bias"),
    torchDtype: f.str("torch_dtype", "float32"),
    quantization,
  };

  const v = f.object("visual");
  const width = v.int("width", 1);
  const mlpRatio = v.num("mlp_ratio");
  const outputDim = v.int("output_dim", 1);
  const imageSize = v.int("image_size", 1);
  const patchSize = v.int("patch_size", 1);
  if (imageSize % patchSize !== 0) {
    throw new Error(`${file}: visual.image_size ${imageSize} is not a multiple of visual.patch_size ${patchSize}`);
  }
  // visual.py:385: the resampler uses 128-wide heads.
  if (outputDim % 128 !== 0) throw new Error(`${file}: visual.output_dim must be a multiple of 128, got ${outputDim}`);
  const visual: VisualConfig = {
    width,
    layers: v.int("layers", 1),
    heads: v.int("heads", 1),
    mlpRatio,
    mlpWidth: Math.trunc(width * mlpRatio),
    imageSize,
    patchSize,
    outputDim,
    imageStartId: v.int("image_start_id"),
    nQueries: v.has("n_queries") ? v.int("n_queries", 1) : 256,
    poolHeads: outputDim / 128,
  };
  if (width % visual.heads !== 0) throw new Error(`${file}: visual.width ${width} is not a multiple of visual.heads ${visual.heads}`);
  return { llm, visual };
}

/** Reads `dir`/config.json (and `dir`/quantize_config.json when present). */
export function loadModelConfig(dir: string): ModelConfig {
  return loadModelConfigFrom(new DirectorySource(dir));
}

/** config.json (and quantize_config.json when present) of any checkpoint source (src/io/source.ts). */
export function loadModelConfigFrom(source: CheckpointSource): ModelConfig {
  const json = (name: string) => readJson(source.path(name), () => source.readText(name));
  const quantize = source.kind("quantize_config.json") !== null ? json("quantize_config.json") : undefined;
  return parseModelConfig(json("config.json"), source.path("config.json"), quantize);
}

/** generation_config.json of a checkpoint source, or null when it has none. */
export function loadGenerationDefaultsFrom(source: CheckpointSource): GenerationDefaults | null {
  const name = "generation_config.json";
  if (source.kind(name) === null) return null;
  return parseGenerationConfig(readJson(source.path(name), () => source.readText(name)), source.path(name));
}

/**
 * Parses generation_config.json. Fields absent from the file take transformers'
 * GenerationConfig defaults (do_sample false, top_k 50, top_p 1, temperature 1, repetition_penalty 1).
 */
export function parseGenerationConfig(json: unknown, file = "generation_config.json"): GenerationDefaults {
  const f = new Fields(asObject(json, file), file);
  return {
    chatFormat: f.str("chat_format"),
    eosTokenId: f.int("eos_token_id"),
    padTokenId: f.optInt("pad_token_id"),
    maxWindowSize: f.int("max_window_size", 1),
    maxNewTokens: f.optInt("max_new_tokens"),
    doSample: f.bool("do_sample", false),
    topK: f.has("top_k") ? f.int("top_k") : 50,
    topP: f.num("top_p", 1.0),
    temperature: f.num("temperature", 1.0),
    repetitionPenalty: f.num("repetition_penalty", 1.0),
  };
}

export function loadGenerationDefaults(dir: string): GenerationDefaults {
  const source = new DirectorySource(dir);
  const name = "generation_config.json";
  return parseGenerationConfig(readJson(source.path(name), () => source.readText(name)), source.path(name));
}
