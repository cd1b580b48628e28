// The Qwen-7B-style decoder of Qwen-VL (modeling_qwen.py QWenModel + QWenLMHeadModel.lm_head):
// token embedding, N pre-norm blocks (RMSNorm → attention with rotary + log-n → residual,
// RMSNorm → SwiGLU MLP → residual), final RMSNorm, lm_head. Owns the checkpoint tensors
// `transformer.wte`, `transformer.h.*`, `transformer.ln_f` and `lm_head`.
//
// One `forward` serves both prefill (empty cache, many tokens) and decode (one token after the
// cache), like the reference's single forward with `past_key_values` (modeling_qwen.py:552-732).
// Everything goes through the Backend, copies included (embedding gather, KV-cache writes, the
// column blocks of the fused c_attn and w1 | w2 outputs): the graph holds only tensor handles, so
// a GPU backend keeps the whole step on the device and the host reads back only the logits.
// The residual stream is scanned for NaN/Inf after the attention and the MLP of every block, and
// the logits once (one pass over T·C values per scan, against ~12·C² multiply-adds per token and
// block): a non-finite value is an error naming the first layer where it appeared, e.g.
// "transformer.h.3 mlp output contains NaN", never silent garbage (docs/security.md).
//
// Shapes: T = tokens in this call, P = tokens already cached, H = heads, D = head dim (kv_channels),
// C = hidden size, F = MLP width (intermediate_size / 2), V = vocabulary.
//
// API
//   class KvCache        per-layer keys/values [capacity, H, D] f32 in long-lived backend tensors,
//                        grown on demand up to maxCapacity
//     static bytesPerToken(cfg): number          2 · layers · H · D · 4
//     length, capacity, ntkAlpha, reserve(n), reset(), dispose()
//     rotateAndWrite(layer, start, qk, v, cos, sin): rope of [q | k], k and v into the cache
//   interface ForwardOptions { logitsFor?: "last" | "all" | readonly number[]; onBlock?(layer, h) }
//   class QwenDecoder
//     static load(vb: WeightSource /* checkpoint root */, cfg: QwenConfig, backend): QwenDecoder
//     embed(ids): Tensor [T, C]
//     newCache(capacity?): KvCache
//     forward(x: Tensor [T, C], cache, options?): Tensor [R, V]   (R rows chosen by logitsFor)
import { addRmsNorm, ropeWriteKv, swigluMatmul, type Backend, type Embedding, type GptqWeights, type Linear, type LinearWeights, type Tensor } from "../ops/backend.js";
import type { WeightSource } from "../io/weights.js";
import type { QwenConfig } from "../config.js";
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
  readonly attnNorm: Tensor;
  /**
   * attn.c_attn: C → 3·H·D, outputs [q | k | v] (split at modeling_qwen.py:265-267). Kept as one
   * linear: one pass over the weights and one dispatch per step instead of three.
   */
  readonly wqkv: Linear;
  /** attn.c_proj: H·D → C */
  readonly wo: Linear;
  /** ln_2 weight [C] */
  readonly ffnNorm: Tensor;
  /**
   * mlp.w1 (a1, the linear branch) and mlp.w2 (a2, the gated branch), C → F each
   * (modeling_qwen.py:332-334), stacked by output rows into one C → 2F linear [a1 | a2].
   */
  readonly w12: Linear;
  /** mlp.c_proj: F → C */
  readonly wDown: Linear;
}

/**
 * Keys and values of every layer for the tokens seen so far, laid out [position, head, dim] so that
 * the first n positions of a layer are one contiguous [n, H, D] tensor (a view, no copy per step).
 * Also remembers the rotary NTK alpha chosen at prefill, which decoding must keep
 * (modeling_qwen.py:648).
 *
 * Each layer's keys and values sit in one long-lived backend tensor [2, capacity, H, D] (keys, then
 * values: one block, so that a backend that reads them in place finds both in the same memory);
 * dispose() gives them back, and a cache that is dropped without dispose() gives them back when it
 * is garbage-collected.
 */
export class KvCache {
  length = 0;
  /** NTK alpha of the prefill that filled this cache; null while empty. */
  ntkAlpha: number | null = null;
  /** inv_freq for ntkAlpha, [D/2]. */
  invFreq: Float32Array | null = null;
  private keys: Tensor[] = [];
  private values: Tensor[] = [];
  /** One tensor [2, capacity, H, D] per layer; shared with the finaliser. */
  private readonly held: { blocks: Tensor[] } = { blocks: [] };
  private cap: number;
  private disposed = false;

  constructor(
    readonly numLayers: number,
    readonly numHeads: number,
    readonly headDim: number,
    capacity: number,
    /** Never grow past this many positions (the model's context window). */
    readonly maxCapacity: number,
    private readonly backend: Backend,
  ) {
    this.cap = Math.max(1, Math.min(capacity, maxCapacity));
    this.allocate(this.cap);
    KvCache.finaliser.register(this, { backend, held: this.held }, this);
  }

  /** Frees the storage of caches that were dropped without dispose(). */
  private static readonly finaliser = new FinalizationRegistry<{ backend: Backend; held: { blocks: Tensor[] } }>(
    ({ backend, held }) => backend.release(...held.blocks),
  );

  /** New (zeroed) tensors for `cap` positions; the caller copies what it keeps. */
  private allocate(cap: number): void {
    const be = this.backend;
    const shape = [cap, this.numHeads, this.headDim];
    const blocks = Array.from({ length: this.numLayers }, () => be.zeros([2, ...shape], { longLived: true }));
    this.keys = blocks.map((b) => be.sliceRows(b, 0, 1).reshape(shape));
    this.values = blocks.map((b) => be.sliceRows(b, 1, 1).reshape(shape));
    this.held.blocks = blocks;
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
    this.checkLive();
    if (tokens <= this.cap) return;
    if (tokens > this.maxCapacity) throw new Error(`KvCache: ${tokens} positions exceed the maximum of ${this.maxCapacity}`);
    const be = this.backend;
    const cap = Math.min(this.maxCapacity, Math.max(tokens, this.cap + Math.max(64, this.cap >> 2)));
    const [oldKeys, oldValues, oldBlocks] = [this.keys, this.values, this.held.blocks];
    this.allocate(cap);
    for (let l = 0; l < this.numLayers; l++) {
      be.writeRows(this.keys[l], 0, be.sliceRows(oldKeys[l], 0, this.length));
      be.writeRows(this.values[l], 0, be.sliceRows(oldValues[l], 0, this.length));
    }
    be.release(...oldBlocks);
    this.cap = cap;
  }

  /** Give the storage back now. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    KvCache.finaliser.unregister(this);
    this.backend.release(...this.held.blocks);
    this.held.blocks = [];
    this.keys = [];
    this.values = [];
  }

  private checkLive(): void {
    if (this.disposed) throw new Error("KvCache: used after dispose()");
  }

  /** Forget every token (the buffers are kept for reuse). */
  reset(): void {
    this.length = 0;
    this.ntkAlpha = null;
    this.invFreq = null;
  }

  /** Store k, v [T, H, D] of `layer` at positions start..start+T−1 (a backend copy). */
  write(layer: number, start: number, k: Tensor, v: Tensor): void {
    this.checkLive();
    if (start + k.shape[0] > this.cap) throw new Error(`KvCache: write past capacity ${this.cap}`);
    this.backend.writeRows(this.keys[layer], start, k);
    this.backend.writeRows(this.values[layer], start, v);
  }

  /**
   * Rotate qk [T, 2H, D] = [q | k] (rope with cos/sin [T, D]) and store the rotated k and v
   * [T, H, D] of `layer` at positions start.. (ropeWriteKv: one dispatch on a GPU). Returns the
   * rotated [q | k].
   */
  rotateAndWrite(layer: number, start: number, qk: Tensor, v: Tensor, cos: Tensor, sin: Tensor): Tensor {
    this.checkLive();
    if (start + qk.shape[0] > this.cap) throw new Error(`KvCache: write past capacity ${this.cap}`);
    return ropeWriteKv(this.backend, qk, cos, sin, v, this.keys[layer], this.values[layer], start);
  }

  /** Keys and values of positions 0..n−1 of `layer`, as [n, H, D] views. */
  view(layer: number, n: number): { k: Tensor; v: Tensor } {
    this.checkLive();
    return { k: this.backend.sliceRows(this.keys[layer], 0, n), v: this.backend.sliceRows(this.values[layer], 0, n) };
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

/**
 * Two linear layers on the same input as one, outputs [a | b] (each output column is computed as
 * before, so results are unchanged). Both must share kind, input size, dtype / group size and
 * whether they have a bias.
 */
function concatOutputs(a: LinearWeights, b: LinearWeights): LinearWeights {
  const K = a.inFeatures, Na = a.outFeatures, Nb = b.outFeatures, N = Na + Nb;
  const bad = (what: string): never => {
    throw new Error(`concatOutputs: layers of ${a.kind}/${b.kind} ${K}→${Na}, ${b.inFeatures}→${Nb} differ in ${what}`);
  };
  if (b.inFeatures !== K) bad("input size");
  if (!a.bias !== !b.bias) bad("bias");
  const bias = a.bias && b.bias ? Float32Array.from([...a.bias, ...b.bias]) : undefined;
  if (a.kind === "dense" && b.kind === "dense") {
    if (a.dtype !== b.dtype) bad("dtype");
    const weight = a.weight instanceof Float32Array ? new Float32Array(N * K) : new Uint16Array(N * K);
    weight.set(a.weight, 0);
    weight.set(b.weight, Na * K); // weight [out, in]: b's rows after a's
    return { ...a, outFeatures: N, weight, bias };
  }
  if (a.kind !== "gptq" || b.kind !== "gptq") return bad("kind");
  if (a.groupSize !== b.groupSize) bad("group size");
  if (Na % 8 !== 0 || Nb % 8 !== 0) bad("alignment (qzeros packs 8 outputs per int32)");
  const G = a.scales.length / Na;
  for (let i = 0; i < K; i++) if (a.gIdx[i] !== b.gIdx[i]) bad(`g_idx[${i}]`);
  // qweight [K/8, N], qzeros [G, N/8], scales [G, N]: each row is a's row then b's.
  const rows = <T extends Int32Array | Uint16Array>(x: T, y: T, R: number, wa: number, wb: number, out: T): T => {
    for (let r = 0; r < R; r++) {
      out.set(x.subarray(r * wa, (r + 1) * wa), r * (wa + wb));
      out.set(y.subarray(r * wb, (r + 1) * wb), r * (wa + wb) + wa);
    }
    return out;
  };
  const out: GptqWeights = {
    ...a,
    outFeatures: N,
    qweight: rows(a.qweight, b.qweight, K / 8, Na, Nb, new Int32Array((K / 8) * N)),
    qzeros: rows(a.qzeros, b.qzeros, G, Na / 8, Nb / 8, new Int32Array(G * (N / 8))),
    scales: rows(a.scales, b.scales, G, Na, Nb, new Uint16Array(G * N)),
    bias,
  };
  return out;
}

export class QwenDecoder {
  private constructor(
    readonly cfg: QwenConfig,
    private readonly backend: Backend,
    /** transformer.wte.weight [V, C], kept as stored (f16 in the published checkpoints). */
    private readonly wte: Embedding,
    private readonly blocks: readonly Block[],
    /** transformer.ln_f.weight [C] */
    private readonly normOut: Tensor,
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
    const table: HalfTable = t.half ? t.half("wte.weight", wteShape) : { dtype: "f32", data: t.f32("wte.weight", wteShape) };
    const wte = backend.embedding({ rows: V, cols: C, ...table });
    const vec = (name: string): Tensor => backend.fromHost(t.f32(name, [C]), [C]);
    // no_bias drops the bias of attn.c_proj and the MLP in the float model (modeling_qwen.py:130-132, 321-329);
    // GPTQ checkpoints carry one anyway and the loader returns it.
    const bias = !cfg.noBias;
    const blocks: Block[] = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      const b = t.pp(`h.${i}`);
      blocks.push({
        attnNorm: vec(`h.${i}.ln_1.weight`),
        wqkv: backend.linear(b.linear("attn.c_attn", { inFeatures: C, outFeatures: 3 * HD, bias: true })),
        wo: backend.linear(b.linear("attn.c_proj", { inFeatures: HD, outFeatures: C, bias })),
        ffnNorm: vec(`h.${i}.ln_2.weight`),
        w12: backend.linear(concatOutputs(
          b.linear("mlp.w1", { inFeatures: C, outFeatures: F, bias }),
          b.linear("mlp.w2", { inFeatures: C, outFeatures: F, bias }),
        )),
        wDown: backend.linear(b.linear("mlp.c_proj", { inFeatures: F, outFeatures: C, bias })),
      });
    }
    const normOut = vec("ln_f.weight");
    const lmHead = backend.linear(vb.linear("lm_head", { inFeatures: C, outFeatures: V, bias: false }));
    return new QwenDecoder(cfg, backend, wte, blocks, normOut, lmHead);
  }

  /** The largest number of positions a cache may hold (max_position_embeddings). */
  get maxContext(): number {
    return this.cfg.maxPositionEmbeddings;
  }

  newCache(capacity = 256): KvCache {
    return new KvCache(this.cfg.numLayers, this.cfg.numHeads, this.cfg.kvChannels, capacity, this.maxContext, this.backend);
  }

  /** Embedding rows for `ids` (transformer.wte, modeling_qwen.py:625): [T, C] f32. */
  embed(ids: ArrayLike<number>): Tensor {
    const V = this.cfg.vocabSize;
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new Error(`embed: token id ${id} at position ${t} is outside the vocabulary [0, ${V})`);
      }
    }
    return this.backend.gather(this.wte, ids);
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
    // ln_f and lm_head are row-wise, so only the rows asked for are computed (modeling_qwen.py:716, 865).
    const rows = this.pickRows(options.logitsFor ?? "last", T);

    // Rotary tables. Dynamic NTK picks alpha from the true length when there is no past
    // (modeling_qwen.py:639-646); with a past the cached alpha is kept (modeling_qwen.py:648).
    if (P === 0 || cache.invFreq === null) {
      const alpha = cfg.useDynamicNtk && P === 0 ? ntkAlpha(T, cfg.seqLength) : (cache.ntkAlpha ?? 1);
      cache.ntkAlpha = alpha;
      cache.invFreq = rotaryInvFreq(D, cfg.rotaryEmbBase, alpha);
    }
    // Positions P..P+T−1: the last T rows of the table for kv_seq_len = P+T (modeling_qwen.py:275).
    const tables = rotaryTables(cache.invFreq, P, T);
    const cos = be.fromHost(tables.cos, [T, D]); // cos: [T, D]
    const sin = be.fromHost(tables.sin, [T, D]); // sin: [T, D]
    // Log-n scale of each query position (modeling_qwen.py:292-298); all 1 up to seq_length.
    const lognHost = cfg.useLognAttn ? lognScales(P, T, cfg.seqLength) : null;
    const logn = lognHost !== null && lognHost.some((s) => s !== 1) ? be.fromHost(lognHost, [T]) : null; // logn: [T]
    cache.reserve(P + T);
    const scale = 1 / Math.sqrt(D); // modeling_qwen.py:151-157: q·k / sqrt(head dim)

    // Intermediates go back to the backend as soon as they are dead (src/ops/backend.ts, "Storage
    // ownership"): a decode step then reuses the same few buffers. `h` is released only when it
    // is ours: not the caller's x, and not shown to onBlock (which may keep it).
    const release = (...ts: Tensor[]): void => be.release(...ts);
    const ownH = options.onBlock === undefined;
    // Each residual add goes with the norm after it and its finite check (addRmsNorm, one
    // dispatch on a GPU): a block's output comes with the next block's attn_norm.
    const eps = cfg.layerNormEpsilon;
    let h = x; // h: [T, C]
    let nextNorm: Tensor | null = null; // attn_norm of the next block, made with h
    for (let l = 0; l < this.blocks.length; l++) {
      const b = this.blocks[l];
      // --- attention (QWenAttention.forward, modeling_qwen.py:251-316) ---
      const attnNorm = nextNorm ?? be.rmsNorm(h, b.attnNorm, eps); // attn_norm: [T, C]
      nextNorm = null;
      const qkv = be.matmul(attnNorm, b.wqkv); // qkv: [T, 3·H·D], split at modeling_qwen.py:265-267
      // q and k rotated together as [T, 2H, D] (the rotation is per head): one op, and in decode
      // (T = 1) every slice here is a view.
      const qk0 = be.sliceColumns(qkv, 0, 2 * H * D).reshape([T, 2 * H, D]); // [q | k]: [T, 2H, D]
      const v = be.sliceColumns(qkv, 2 * H * D, H * D).reshape([T, H, D]); // v: [T, H, D]
      // modeling_qwen.py:273-280, rotate-half (1114-1137); the rotated k and v go into the cache
      // at positions P.. (modeling_qwen.py:282-285: cat(past, new) along positions).
      const qk = cache.rotateAndWrite(l, P, qk0, v, cos, sin).reshape([T, 2 * H * D]);
      let q = be.sliceColumns(qk, 0, H * D).reshape([T, H, D]); // q: [T, H, D]
      // qk0, v: copies (prefill) or views of qkv (decode: ignored); q: a copy or a view of qk,
      // which goes with q after the attention.
      release(attnNorm, qkv, qk0, v);
      if (logn !== null) {
        const scaled = be.scaleRows(q.reshape([T, H * D]), logn).reshape([T, H, D]);
        release(q);
        q = scaled;
      }
      const kv = cache.view(l, P + T); // k, v: [P+T, H, D]
      const attn = be.attention(q, kv.k, kv.v, { scale, causal: true, queryOffset: P }); // attn: [T, H, D]
      const attnOut = be.matmul(attn.reshape([T, H * D]), b.wo); // attn_out: [T, C]
      // ffn_inp = h + attn_out (modeling_qwen.py:386); ffn_norm: [T, C]
      const { sum: ffnInp, normed: ffnNorm } = addRmsNorm(be, h, attnOut, b.ffnNorm, eps, `transformer.h.${l} attention output`);
      release(q, qk, attn, attnOut);
      if (ownH && h !== x) release(h);
      // --- MLP (QWenMLP.forward, modeling_qwen.py:331-336): c_proj(w1(x) · silu(w2(x))) ---
      const a12 = be.matmul(ffnNorm, b.w12); // [a1 | a2]: [T, 2F]
      release(ffnNorm);
      // c_proj(a1 · silu(a2)) (swigluMatmul: on a GPU the gate is applied as the GEMV reads a12)
      const ffnOut = swigluMatmul(be, a12, b.wDown); // ffn_out: [T, C]
      release(a12);
      // l_out = ffn_inp + ffn_out: [T, C], with the next block's attn_norm, or after the last
      // block with ln_f when every row goes on to lm_head.
      const nextWeight = l + 1 < this.blocks.length ? this.blocks[l + 1].attnNorm : rows === null ? this.normOut : null;
      const what = `transformer.h.${l} mlp output`;
      if (nextWeight) {
        ({ sum: h, normed: nextNorm } = addRmsNorm(be, ffnInp, ffnOut, nextWeight, eps, what));
      } else {
        h = be.add(ffnInp, ffnOut);
        be.checkFinite(h, what);
      }
      release(ffnInp, ffnOut);
      options.onBlock?.(l, h);
    }
    cache.length = P + T;
    release(cos, sin, ...(logn ? [logn] : []));

    const hSel = rows === null ? h : be.gatherRows(h, rows); // [R, C]
    const normed = nextNorm ?? be.rmsNorm(hSel, this.normOut, eps); // ln_f: [R, C]
    const logits = be.matmul(normed, this.lmHead); // logits: [R, V]
    be.checkFinite(logits, "lm_head output");
    release(normed);
    if (hSel !== h) release(hSel);
    if (ownH && h !== x) release(h);
    return logits;
  }

  /** null = every row, in order (also when the list asked for is 0..T−1, e.g. "last" of one token). */
  private pickRows(which: "last" | "all" | readonly number[], T: number): number[] | null {
    if (which === "all") return null;
    const rows = which === "last" ? [T - 1] : [...which];
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= T) throw new Error(`forward: logitsFor row ${r} is outside 0..${T - 1}`);
    }
    return rows.length === T && rows.every((r, i) => r === i) ? null : rows;
  }
}
