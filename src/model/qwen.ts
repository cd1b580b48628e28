// The Qwen-7B-style decoder of Qwen-VL (modeling_qwen.py QWenModel + QWenLMHeadModel.lm_head):
// token embedding, N pre-norm blocks (RMSNorm → attention with rotary + log-n → residual,
// RMSNorm → SwiGLU MLP → residual), final RMSNorm, lm_head. Owns the checkpoint tensors
// `transformer.wte`, `transformer.h.*`, `transformer.ln_f` and `lm_head`.
//
// One `forward` serves both prefill (empty cache, many tokens) and decode (one token after the
// cache), like the reference's single forward with `past_key_values` (modeling_qwen.py:552-732).
// All O(n·d) math goes through the Backend; the graph only copies rows (embedding lookup, KV cache).
//
// Shapes: T = tokens in this call, P = tokens already cached, H = heads, D = head dim (kv_channels),
// C = hidden size, F = MLP width (intermediate_size / 2), V = vocabulary.
//
// API
//   class KvCache        per-layer keys/values [capacity, H, D] f32, grown on demand up to maxCapacity
//     static bytesPerToken(cfg): number          2 · layers · H · D · 4
//     length, capacity, ntkAlpha, reserve(n), reset()
//   interface ForwardOptions { logitsFor?: "last" | "all" | readonly number[]; onBlock?(layer, h) }
//   class QwenDecoder
//     static load(vb: WeightSource /* checkpoint root */, cfg: QwenConfig, backend): QwenDecoder
//     embed(ids): Tensor [T, C]
//     newCache(capacity?): KvCache
//     forward(x: Tensor [T, C], cache, options?): Tensor [R, V]   (R rows chosen by logitsFor)
import { Tensor, type Backend, type GptqWeights, type Linear, type LinearWeights } from "../ops/backend.js";
import type { WeightSource } from "../io/weights.js";
import type { QwenConfig } from "../config.js";
import { f16ArrayToF32, bf16ArrayToF32 } from "../io/fp16.js";
import { lognScales, ntkAlpha, rotaryInvFreq, rotaryTables } from "./rope.js";

/** A float tensor in its stored precision (VarBuilder.half); lets the 151936-row table stay f16. */
interface HalfTable {
  readonly dtype: "f32" | "f16" | "bf16";
  readonly data: Float32Array | Uint16Array;
}

/** A WeightSource that can also hand out a float tensor without widening it (VarBuilder does). */
type WeightSourceWithHalf = WeightSource & { half?(name: string, shape: readonly number[]): HalfTable };

interface Block {
  /** ln_1 weight [C] */
  readonly attnNorm: Float32Array;
  /** c_attn split by output rows into q, k, v: C → H·D each (modeling_qwen.py:265-267). */
  readonly wq: Linear;
  readonly wk: Linear;
  readonly wv: Linear;
  /** attn.c_proj: H·D → C */
  readonly wo: Linear;
  /** ln_2 weight [C] */
  readonly ffnNorm: Float32Array;
  /** mlp.w1 (a1, the linear branch) and mlp.w2 (a2, the gated branch): C → F (modeling_qwen.py:332-334). */
  readonly w1: Linear;
  readonly w2: Linear;
  /** mlp.c_proj: F → C */
  readonly wDown: Linear;
}

/**
 * Keys and values of every layer for the tokens seen so far, laid out [position, head, dim] so that
 * the first n positions of a layer are one contiguous [n, H, D] tensor (no copy per step).
 * Also remembers the rotary NTK alpha chosen at prefill, which decoding must keep
 * (modeling_qwen.py:648).
 */
export class KvCache {
  length = 0;
  /** NTK alpha of the prefill that filled this cache; null while empty. */
  ntkAlpha: number | null = null;
  /** inv_freq for ntkAlpha, [D/2]. */
  invFreq: Float32Array | null = null;
  private keys: Float32Array[];
  private values: Float32Array[];
  private cap: number;

  constructor(
    readonly numLayers: number,
    readonly numHeads: number,
    readonly headDim: number,
    capacity: number,
    /** Never grow past this many positions (the model's context window). */
    readonly maxCapacity = Number.MAX_SAFE_INTEGER,
  ) {
    this.cap = Math.max(1, Math.min(capacity, maxCapacity));
    const n = this.cap * numHeads * headDim;
    this.keys = Array.from({ length: numLayers }, () => new Float32Array(n));
    this.values = Array.from({ length: numLayers }, () => new Float32Array(n));
  }

  /** Bytes of cache per token: keys and values (2) · layers · heads · head dim · 4 bytes (f32). */
  static bytesPerToken(cfg: Pick<QwenConfig, "numLayers" | "numHeads" | "kvChannels">): number {
    return 2 * cfg.numLayers * cfg.numHeads * cfg.kvChannels * 4;
  }

  get capacity(): number {
    return this.cap;
  }

  /**
   * Make room for `tokens` positions in all, keeping what is cached. Grows by a quarter (at least
   * 64 positions) rather than doubling: at 1 MiB per token for Qwen-VL-Chat, overshoot is costly.
   */
  reserve(tokens: number): void {
    if (tokens <= this.cap) return;
    if (tokens > this.maxCapacity) throw new Error(`KvCache: ${tokens} positions exceed the maximum of ${this.maxCapacity}`);
    const cap = Math.min(this.maxCapacity, Math.max(tokens, this.cap + Math.max(64, this.cap >> 2)));
    const row = this.numHeads * this.headDim;
    const grow = (old: Float32Array): Float32Array => {
      const a = new Float32Array(cap * row);
      a.set(old.subarray(0, this.length * row));
      return a;
    };
    this.keys = this.keys.map(grow);
    this.values = this.values.map(grow);
    this.cap = cap;
  }

  /** Forget every token (the buffers are kept for reuse). */
  reset(): void {
    this.length = 0;
    this.ntkAlpha = null;
    this.invFreq = null;
  }

  /** Store k, v [T, H, D] of `layer` at positions start..start+T−1. */
  write(layer: number, start: number, k: Tensor, v: Tensor): void {
    const row = this.numHeads * this.headDim;
    if (start * row + k.data.length > this.cap * row) throw new Error(`KvCache: write past capacity ${this.cap}`);
    this.keys[layer].set(k.data, start * row);
    this.values[layer].set(v.data, start * row);
  }

  /** Keys and values of positions 0..n−1 of `layer`, as [n, H, D] views. */
  view(layer: number, n: number): { k: Tensor; v: Tensor } {
    const size = n * this.numHeads * this.headDim;
    const shape = [n, this.numHeads, this.headDim];
    return {
      k: new Tensor(shape, this.keys[layer].subarray(0, size)),
      v: new Tensor(shape, this.values[layer].subarray(0, size)),
    };
  }
}

export interface ForwardOptions {
  /**
   * Which rows of this call get logits: "last" (default; what generation needs), "all", or
   * indices 0..T−1 into this call's tokens. lm_head and ln_f run on those rows only.
   */
  readonly logitsFor?: "last" | "all" | readonly number[];
  /** Called with the hidden state h [T, C] after each block (before ln_f for the last one). */
  readonly onBlock?: (layer: number, h: Tensor) => void;
}

/** Output rows [start, start+count) of a linear layer, as its own layer. */
function sliceOutputs(w: LinearWeights, start: number, count: number): LinearWeights {
  const K = w.inFeatures;
  const N = w.outFeatures;
  const bias = w.bias ? w.bias.slice(start, start + count) : undefined;
  if (w.kind === "dense") {
    // weight [out, in]: a block of whole rows.
    return { ...w, outFeatures: count, weight: w.weight.slice(start * K, (start + count) * K), bias };
  }
  // GPTQ packs 8 outputs per int32 of qzeros: slices must stay on those boundaries.
  if (start % 8 !== 0 || count % 8 !== 0) throw new Error(`sliceOutputs: GPTQ slice [${start}, +${count}) is not 8-aligned`);
  const G = w.scales.length / N;
  const qweight = new Int32Array((K / 8) * count);
  for (let r = 0; r < K / 8; r++) qweight.set(w.qweight.subarray(r * N + start, r * N + start + count), r * count);
  const qzeros = new Int32Array(G * (count / 8));
  const scales = new Uint16Array(G * count);
  for (let g = 0; g < G; g++) {
    qzeros.set(w.qzeros.subarray(g * (N / 8) + start / 8, g * (N / 8) + (start + count) / 8), g * (count / 8));
    scales.set(w.scales.subarray(g * N + start, g * N + start + count), g * count);
  }
  const out: GptqWeights = { ...w, outFeatures: count, qweight, qzeros, scales, bias };
  return out;
}

export class QwenDecoder {
  private constructor(
    readonly cfg: QwenConfig,
    private readonly backend: Backend,
    /** transformer.wte.weight [V, C] as stored (f16 in the published checkpoints). */
    private readonly wte: HalfTable,
    private readonly blocks: readonly Block[],
    /** transformer.ln_f.weight [C] */
    private readonly normOut: Float32Array,
    /** lm_head: C → V (no bias, modeling_qwen.py:774) */
    private readonly lmHead: Linear,
  ) {}

  /** Reads the decoder's tensors from `vb` (the checkpoint root, names as in the published model). */
  static load(vb: WeightSource, cfg: QwenConfig, backend: Backend): QwenDecoder {
    const { hiddenSize: C, mlpWidth: F, vocabSize: V } = cfg;
    if (cfg.rotaryPct !== 1) {
      throw new Error(`config.json: rotary_pct ${cfg.rotaryPct} is not supported (Qwen-VL uses 1.0: rotary over the whole head)`);
    }
    const HD = cfg.projectionSize;
    // QWenAttention splits c_attn's output in chunks of hidden_size and uses head_dim =
    // hidden_size / heads (modeling_qwen.py:114-117, 267): that only works when kv_channels · heads = hidden_size.
    if (HD !== C) {
      throw new Error(`config.json: kv_channels · num_attention_heads = ${HD} must equal hidden_size ${C} (as modeling_qwen.py assumes)`);
    }
    const t = vb.pp("transformer") as WeightSourceWithHalf;
    const wteShape = [V, C];
    const wte: HalfTable = t.half ? t.half("wte.weight", wteShape) : { dtype: "f32", data: t.f32("wte.weight", wteShape) };
    // no_bias drops the bias of attn.c_proj and the MLP in the float model (modeling_qwen.py:130-132, 321-329);
    // GPTQ checkpoints carry one anyway and the loader returns it.
    const bias = !cfg.noBias;
    const blocks: Block[] = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      const b = t.pp(`h.${i}`);
      const cAttn = b.linear("attn.c_attn", { inFeatures: C, outFeatures: 3 * HD, bias: true });
      blocks.push({
        attnNorm: b.f32("ln_1.weight", [C]),
        wq: backend.linear(sliceOutputs(cAttn, 0, HD)),
        wk: backend.linear(sliceOutputs(cAttn, HD, HD)),
        wv: backend.linear(sliceOutputs(cAttn, 2 * HD, HD)),
        wo: backend.linear(b.linear("attn.c_proj", { inFeatures: HD, outFeatures: C, bias })),
        ffnNorm: b.f32("ln_2.weight", [C]),
        w1: backend.linear(b.linear("mlp.w1", { inFeatures: C, outFeatures: F, bias })),
        w2: backend.linear(b.linear("mlp.w2", { inFeatures: C, outFeatures: F, bias })),
        wDown: backend.linear(b.linear("mlp.c_proj", { inFeatures: F, outFeatures: C, bias })),
      });
    }
    const normOut = t.f32("ln_f.weight", [C]);
    const lmHead = backend.linear(vb.linear("lm_head", { inFeatures: C, outFeatures: V, bias: false }));
    return new QwenDecoder(cfg, backend, wte, blocks, normOut, lmHead);
  }

  /** The largest number of positions a cache may hold (max_position_embeddings). */
  get maxContext(): number {
    return this.cfg.maxPositionEmbeddings;
  }

  newCache(capacity = 256): KvCache {
    return new KvCache(this.cfg.numLayers, this.cfg.numHeads, this.cfg.kvChannels, capacity, this.maxContext);
  }

  /** Embedding rows for `ids` (transformer.wte, modeling_qwen.py:625): [T, C] f32. */
  embed(ids: ArrayLike<number>): Tensor {
    const C = this.cfg.hiddenSize;
    const V = this.cfg.vocabSize;
    const out = new Float32Array(ids.length * C);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new Error(`embed: token id ${id} at position ${t} is outside the vocabulary [0, ${V})`);
      }
      const row = this.wte.data.subarray(id * C, (id + 1) * C);
      const dst = out.subarray(t * C, (t + 1) * C);
      if (this.wte.dtype === "f16") f16ArrayToF32(row as Uint16Array, dst);
      else if (this.wte.dtype === "bf16") bf16ArrayToF32(row as Uint16Array, dst);
      else dst.set(row);
    }
    return new Tensor([ids.length, C], out);
  }

  /**
   * Runs x [T, C] (embeddings of the next T tokens) through the decoder after the P tokens in
   * `cache`, appends their keys/values to it and returns logits for the rows `logitsFor` picks.
   */
  forward(x: Tensor, cache: KvCache, options: ForwardOptions = {}): Tensor {
    const cfg = this.cfg;
    const be = this.backend;
    const { hiddenSize: C, numHeads: H, kvChannels: D } = cfg;
    if (x.shape.length !== 2 || x.shape[1] !== C) throw new Error(`forward: x must be [T, ${C}], got [${x.shape}]`);
    const T = x.shape[0];
    const P = cache.length;
    if (T === 0) throw new Error("forward: no tokens");
    if (P + T > this.maxContext) {
      throw new Error(`forward: ${P} cached + ${T} new tokens exceed the context window of ${this.maxContext} (max_position_embeddings)`);
    }

    // Rotary tables. Dynamic NTK picks alpha from the true length when there is no past
    // (modeling_qwen.py:639-646); with a past the cached alpha is kept (modeling_qwen.py:648).
    if (P === 0 || cache.invFreq === null) {
      const alpha = cfg.useDynamicNtk && P === 0 ? ntkAlpha(T, cfg.seqLength) : (cache.ntkAlpha ?? 1);
      cache.ntkAlpha = alpha;
      cache.invFreq = rotaryInvFreq(D, cfg.rotaryEmbBase, alpha);
    }
    // Positions P..P+T−1: the last T rows of the table for kv_seq_len = P+T (modeling_qwen.py:275).
    const { cos, sin } = rotaryTables(cache.invFreq, P, T); // cos, sin: [T, D]
    // Log-n scale of each query position (modeling_qwen.py:292-298); all 1 up to seq_length.
    const logn = cfg.useLognAttn ? lognScales(P, T, cfg.seqLength) : null;
    const lognActive = logn !== null && logn.some((s) => s !== 1);
    cache.reserve(P + T);
    const scale = 1 / Math.sqrt(D); // modeling_qwen.py:151-157: q·k / sqrt(head dim)

    let h = x; // h: [T, C]
    for (let l = 0; l < this.blocks.length; l++) {
      const b = this.blocks[l];
      // --- attention (QWenAttention.forward, modeling_qwen.py:251-316) ---
      const attnNorm = be.rmsNorm(h, b.attnNorm, cfg.layerNormEpsilon); // attn_norm: [T, C]
      let q = be.matmul(attnNorm, b.wq).reshape([T, H, D]); // q: [T, H, D]
      let k = be.matmul(attnNorm, b.wk).reshape([T, H, D]); // k: [T, H, D]
      const v = be.matmul(attnNorm, b.wv).reshape([T, H, D]); // v: [T, H, D]
      q = be.rope(q, cos, sin); // modeling_qwen.py:273-280, rotate-half (1114-1137)
      k = be.rope(k, cos, sin);
      cache.write(l, P, k, v); // modeling_qwen.py:282-285: cat(past, new) along positions
      if (lognActive) q = be.scaleRows(q.reshape([T, H * D]), logn!).reshape([T, H, D]);
      const kv = cache.view(l, P + T); // k, v: [P+T, H, D]
      const attn = be.attention(q, kv.k, kv.v, { scale, causal: true, queryOffset: P }); // attn: [T, H, D]
      const attnOut = be.matmul(attn.reshape([T, H * D]), b.wo); // attn_out: [T, C]
      const ffnInp = be.add(h, attnOut); // ffn_inp: [T, C] (modeling_qwen.py:386)
      // --- MLP (QWenMLP.forward, modeling_qwen.py:331-336): c_proj(w1(x) · silu(w2(x))) ---
      const ffnNorm = be.rmsNorm(ffnInp, b.ffnNorm, cfg.layerNormEpsilon); // ffn_norm: [T, C]
      const a1 = be.matmul(ffnNorm, b.w1); // a1: [T, F]
      const a2 = be.matmul(ffnNorm, b.w2); // a2: [T, F]
      const ffnOut = be.matmul(be.swiglu(a1, a2), b.wDown); // ffn_out: [T, C]
      h = be.add(ffnInp, ffnOut); // l_out: [T, C]
      options.onBlock?.(l, h);
    }
    cache.length = P + T;

    // ln_f and lm_head are row-wise, so only the rows asked for are computed (modeling_qwen.py:716, 865).
    const rows = this.pickRows(options.logitsFor ?? "last", T);
    const hSel = rows === null ? h : gatherRows(h, rows); // [R, C]
    const normed = be.rmsNorm(hSel, this.normOut, cfg.layerNormEpsilon); // [R, C]
    return be.matmul(normed, this.lmHead); // logits: [R, V]
  }

  /** null = every row. */
  private pickRows(which: "last" | "all" | readonly number[], T: number): number[] | null {
    if (which === "all") return null;
    if (which === "last") return [T - 1];
    for (const r of which) {
      if (!Number.isInteger(r) || r < 0 || r >= T) throw new Error(`forward: logitsFor row ${r} is outside 0..${T - 1}`);
    }
    return [...which];
  }
}

/** Rows `rows` of a [T, C] tensor. */
function gatherRows(x: Tensor, rows: readonly number[]): Tensor {
  const C = x.cols;
  const out = new Float32Array(rows.length * C);
  rows.forEach((r, i) => out.set(x.data.subarray(r * C, (r + 1) * C), i * C));
  return new Tensor([rows.length, C], out);
}
