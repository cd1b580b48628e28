// The Qwen-VL vision tower: ViT (OpenCLIP ViT-bigG layout) + a one-layer cross-attention resampler
// that turns 1024 patch features into 256 image embeddings of the LLM's width.
// Reference: /work/shared/upstream/visual.py (VisionTransformer.forward, visual.py:398-420).
//
//   pixels [3, S, S] (normalised)                      S = 448, P = 14, G = S/P = 32   trace "pixels"
//   → conv1 (P×P, stride P, no bias) as a GEMM over the G² patches (patchRows)   x [G², width]
//   → + positional_embedding (16×16 table, torch-bicubic resized to G×G)
//   → ln_pre                                                          trace "vit.ln_pre"
//   → `layers` × VisualAttentionBlock (pre-LN, GELU MLP)              trace "vit.block.K"
//   → Resampler: 256 learned queries cross-attend to the patches      trace "vit.resampler"
//   → ln_post → x @ proj                                              trace "image_embeds" [256, outputDim]
//
// Every LayerNorm of the tower uses eps 1e-6: VisionTransformer builds `norm_layer =
// partial(nn.LayerNorm, eps=1e-6)` (visual.py:368) and hands it to ln_pre, every block's ln_1/ln_2
// (visual.py:375), the resampler's ln_q/ln_kv (visual.py:387) and ln_post (visual.py:389).
//
// Each block's output and the final embeddings are scanned for NaN/Inf (an error naming the block).
//
// Weight layout changes made once at load time (no runtime cost):
//   - conv1.weight [width, 3, P, P] is read as a dense linear [width, 3·P·P]; patches are flattened
//     in the same (c, ky, kx) order, so the convolution is one matmul.
//   - VisualAttention's in_proj output is per-head interleaved, viewed as [T, heads, 3·hd] and split
//     into q | k | v inside each head (visual.py:184-192); its rows are regrouped into three linears.
//   - nn.MultiheadAttention's in_proj_weight [3E, E] is [W_q; W_k; W_v] (torch F._in_projection_packed);
//     it is cut into three linears.
//   - proj is a bare [outputDim, outputDim] parameter used as `x @ proj` (visual.py:419); it is
//     transposed into nn.Linear's [out, in].
import type { Backend, DenseWeights, Linear, LinearWeights, Tensor } from "../ops/backend.js";
import { matmulGelu } from "../ops/backend.js";
import type { WeightSource } from "../io/weights.js";
import { getAbsPos } from "./interpolate.js";
import { sincosPosEmbed2d } from "./sincos.js";

/** The vision settings the tower needs (a structural subset of config.ts `VisualConfig`). */
export interface VisionTowerConfig {
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  /** int(width · mlp_ratio) (visual.py:264). */
  readonly mlpWidth: number;
  readonly imageSize: number;
  readonly patchSize: number;
  readonly outputDim: number;
  /** Resampler queries; VisionTransformer's default is 256 (visual.py:342). */
  readonly nQueries?: number;
}

/**
 * Callback receiving named intermediates (the conformance runner compares them with the goldens).
 * The tensor is valid during the call only: read it then (`backend.read` captures its values).
 */
export type TraceFn = (name: string, t: Tensor) => void;

/** LayerNorm eps of every norm in the tower: `partial(nn.LayerNorm, eps=1e-6)`, visual.py:368. */
const LN_EPS = 1e-6;
/** Rows of the learned positional table: `torch.randn(256, width)`, visual.py:365 (a 16×16 grid). */
const POS_TABLE_ROWS = 256;
/** Resampler head width: num_heads = output_dim // 128, visual.py:385. */
const POOL_HEAD_DIM = 128;

interface LayerNormWeights {
  readonly weight: Tensor;
  readonly bias: Tensor;
}

/** One VisualAttentionBlock (visual.py:254-296). */
interface Block {
  readonly ln1: LayerNormWeights;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly out: Linear;
  readonly ln2: LayerNormWeights;
  readonly fc: Linear;
  readonly proj: Linear;
}

/** The Resampler (visual.py:88-151) with its input-independent position tables. */
interface Resampler {
  /** null when kv_proj is nn.Identity (width == outputDim). */
  readonly kvProj: Linear | null;
  readonly lnKv: LayerNormWeights;
  readonly lnQ: LayerNormWeights;
  /** The learned queries [nQueries, E]. */
  readonly query: Tensor;
  /** pos_embed [nQueries, E], added to the queries (visual.py:144). */
  readonly posQ: Tensor;
  /** pos_embed resized to the patch grid [G², E], added to the keys (visual.py:136, :145). */
  readonly posK: Tensor;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly out: Linear;
  readonly heads: number;
}

function layerNormWeights(vb: WeightSource, be: Backend, name: string, dim: number): LayerNormWeights {
  return { weight: be.fromHost(vb.f32(`${name}.weight`, [dim]), [dim]), bias: be.fromHost(vb.f32(`${name}.bias`, [dim]), [dim]) };
}

function denseF32(weight: Float32Array, outFeatures: number, inFeatures: number, bias?: Float32Array): DenseWeights {
  return { kind: "dense", inFeatures, outFeatures, weight, dtype: "f32", bias };
}

/**
 * A dense linear made of the given output rows of `w` (in that order), keeping its dtype.
 * `what` names the tensor for errors.
 */
function selectRows(w: LinearWeights, rows: Int32Array, what: string): DenseWeights {
  if (w.kind !== "dense") throw new Error(`${what}: expected a float weight, the checkpoint has ${w.kind}`);
  const K = w.inFeatures;
  const weight = w.weight instanceof Float32Array ? new Float32Array(rows.length * K) : new Uint16Array(rows.length * K);
  const bias = w.bias ? new Float32Array(rows.length) : undefined;
  for (let r = 0; r < rows.length; r++) {
    weight.set(w.weight.subarray(rows[r] * K, (rows[r] + 1) * K), r * K);
    if (bias && w.bias) bias[r] = w.bias[rows[r]];
  }
  return { kind: "dense", inFeatures: K, outFeatures: rows.length, weight, dtype: w.dtype, bias };
}

/** Rows [start, start + n) as an Int32Array of indices. */
function rowRange(start: number, n: number): Int32Array {
  const r = new Int32Array(n);
  for (let i = 0; i < n; i++) r[i] = start + i;
  return r;
}

/**
 * Row indices of part `part` (0 = q, 1 = k, 2 = v) of VisualAttention's interleaved in_proj:
 * output column h·3·hd + part·hd + d belongs to head h (visual.py:184-192).
 */
function interleavedRows(heads: number, headDim: number, part: number): Int32Array {
  const r = new Int32Array(heads * headDim);
  for (let h = 0; h < heads; h++) {
    for (let d = 0; d < headDim; d++) r[h * headDim + d] = h * 3 * headDim + part * headDim + d;
  }
  return r;
}

function checkPositiveInt(cfg: VisionTowerConfig, key: keyof VisionTowerConfig): number {
  const v = cfg[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new Error(`vision config: ${key} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

export class VisionTower {
  /** Patch grid side G = imageSize / patchSize. */
  readonly grid: number;
  readonly nQueries: number;

  private constructor(
    readonly config: VisionTowerConfig,
    private readonly backend: Backend,
    private readonly conv1: Linear,
    /** positional_embedding resized to the patch grid [G², width]. */
    private readonly posEmbed: Tensor,
    private readonly lnPre: LayerNormWeights,
    private readonly blocks: readonly Block[],
    private readonly pool: Resampler,
    private readonly lnPost: LayerNormWeights,
    private readonly proj: Linear,
  ) {
    this.grid = config.imageSize / config.patchSize;
    this.nQueries = pool.query.rows;
  }

  /** Load `transformer.visual.*` from the root weight builder `root`. */
  static load(root: WeightSource, config: VisionTowerConfig, backend: Backend): VisionTower {
    const width = checkPositiveInt(config, "width");
    const layers = checkPositiveInt(config, "layers");
    const heads = checkPositiveInt(config, "heads");
    const mlpWidth = checkPositiveInt(config, "mlpWidth");
    const imageSize = checkPositiveInt(config, "imageSize");
    const patch = checkPositiveInt(config, "patchSize");
    const E = checkPositiveInt(config, "outputDim");
    const nQueries = config.nQueries ?? 256;
    if (width % heads !== 0) throw new Error(`vision config: width ${width} is not divisible by heads ${heads}`);
    if (imageSize % patch !== 0) throw new Error(`vision config: imageSize ${imageSize} is not a multiple of patchSize ${patch}`);
    if (E % POOL_HEAD_DIM !== 0) throw new Error(`vision config: outputDim ${E} is not a multiple of ${POOL_HEAD_DIM} (resampler heads)`);
    const poolGrid = Math.round(Math.sqrt(nQueries));
    if (poolGrid * poolGrid !== nQueries) throw new Error(`vision config: nQueries ${nQueries} is not a square`);
    const G = imageSize / patch;
    const nPatches = G * G;
    const headDim = width / heads;

    const vb = root.pp("transformer.visual");
    const lin = (w: LinearWeights) => backend.linear(w);

    // conv1: Conv2d(3, width, P, stride P, bias=False) (visual.py:361) as a [width, 3·P·P] linear.
    const patchLen = 3 * patch * patch;
    const conv1 = lin(denseF32(vb.f32("conv1.weight", [width, 3, patch, patch]), width, patchLen));

    // visual.py:365 + :409: the 16×16 table, resized to G×G once (the image size is fixed).
    const posTable = vb.f32("positional_embedding", [POS_TABLE_ROWS, width]);
    const posEmbed = backend.fromHost(getAbsPos(posTable, POS_TABLE_ROWS, width, nPatches), [nPatches, width]);

    const blocks: Block[] = [];
    for (let i = 0; i < layers; i++) {
      const b = vb.pp(`transformer.resblocks.${i}`);
      const inProj = b.linear("attn.in_proj", { inFeatures: width, outFeatures: 3 * width, bias: true });
      const what = b.path("attn.in_proj");
      blocks.push({
        ln1: layerNormWeights(b, backend, "ln_1", width),
        q: lin(selectRows(inProj, interleavedRows(heads, headDim, 0), what)),
        k: lin(selectRows(inProj, interleavedRows(heads, headDim, 1), what)),
        v: lin(selectRows(inProj, interleavedRows(heads, headDim, 2), what)),
        out: lin(b.linear("attn.out_proj", { inFeatures: width, outFeatures: width, bias: true })),
        ln2: layerNormWeights(b, backend, "ln_2", width),
        fc: lin(b.linear("mlp.c_fc", { inFeatures: width, outFeatures: mlpWidth, bias: true })),
        proj: lin(b.linear("mlp.c_proj", { inFeatures: mlpWidth, outFeatures: width, bias: true })),
      });
    }

    // Resampler(grid_size=sqrt(n_queries), embed_dim=output_dim, num_heads=output_dim//128,
    // kv_dim=width), visual.py:381-387.
    const p = vb.pp("attn_pool");
    // pos_embed is a frozen Parameter, so it is in the state dict (visual.py:113-115); fall back to
    // its definition when a checkpoint leaves it out.
    const posQ = p.has("pos_embed") ? p.f32("pos_embed", [nQueries, E]) : sincosPosEmbed2d(E, poolGrid);
    const inW = p.f32("attn.in_proj_weight", [3 * E, E]);
    const inB = p.f32("attn.in_proj_bias", [3 * E]);
    // Views, not copies: the three blocks share the one [3E, E] array.
    const part = (i: number) =>
      lin(denseF32(inW.subarray(i * E * E, (i + 1) * E * E), E, E, inB.subarray(i * E, (i + 1) * E)));
    // kv_proj is nn.Identity when kv_dim == embed_dim (visual.py:119-122).
    const kvProj = width !== E ? lin(p.linear("kv_proj", { inFeatures: width, outFeatures: E, bias: false })) : null;
    const pool: Resampler = {
      kvProj,
      lnKv: layerNormWeights(p, backend, "ln_kv", E),
      lnQ: layerNormWeights(p, backend, "ln_q", E),
      query: backend.fromHost(p.f32("query", [nQueries, E]), [nQueries, E]),
      posQ: backend.fromHost(posQ, [nQueries, E]),
      posK: backend.fromHost(getAbsPos(posQ, nQueries, E, nPatches), [nPatches, E]),
      q: part(0),
      k: part(1),
      v: part(2),
      out: lin(p.linear("attn.out_proj", { inFeatures: E, outFeatures: E, bias: true })),
      heads: E / POOL_HEAD_DIM,
    };

    // proj [E, E] used as `x @ proj`: out[n] = Σ_k x[k]·proj[k, n], so nn.Linear's W[n, k] = proj[k, n].
    const projT = transpose(vb.f32("proj", [E, E]), E, E);
    return new VisionTower(
      { width, layers, heads, mlpWidth, imageSize, patchSize: patch, outputDim: E, nQueries },
      backend, conv1, posEmbed, layerNormWeights(vb, backend, "ln_pre", width), blocks, pool,
      layerNormWeights(vb, backend, "ln_post", E), lin(denseF32(projT, E, E)),
    );
  }

  /**
   * Encode one normalised image `pixels` [3, S, S] (ToTensor + Normalize, visual.py:354-360) into
   * [nQueries, outputDim] embeddings. `pixels` is a tensor of this backend (Backend.imagePixels,
   * as QwenVL.encodeImage makes it; it stays the caller's) or host values (src/image/preprocess.ts
   * `preprocessImage` / `normalizeCLIP`), uploaded here. `trace` sees "pixels" and the named
   * intermediates.
   */
  encode(pixels: Tensor | Float32Array, trace?: TraceFn): Tensor {
    const be = this.backend;
    const { width, heads, imageSize: S, patchSize: P } = this.config;
    const host = pixels instanceof Float32Array;
    if (host ? pixels.length !== 3 * S * S : pixels.shape.join(",") !== `3,${S},${S}`) {
      const got = host ? `${pixels.length} values` : `shape [${pixels.shape.join(", ")}]`;
      throw new Error(`VisionTower.encode: pixels have ${got}, expected 3×${S}×${S} = ${3 * S * S} values`);
    }
    const G = this.grid;
    const T = G * G;

    // Intermediates go back to the backend once dead (src/ops/backend.ts, "Storage ownership").
    const release = (...ts: Tensor[]): void => be.release(...ts);
    const input = host ? be.fromHost(pixels, [3, S, S]) : pixels; // input: [3, S, S]
    trace?.("pixels", input);
    // visual.py:405-407: conv1, flatten, permute — one GEMM over the flattened patches.
    const patches = be.patchRows(input, P); // patches: [T, 3·P·P]
    if (host) release(input);
    const embedded = be.matmul(patches, this.conv1); // x: [T, width]
    const posAdded = be.add(embedded, this.posEmbed); // visual.py:409, x: [T, width]
    let x = be.layerNorm(posAdded, this.lnPre.weight, this.lnPre.bias, LN_EPS); // visual.py:411
    release(patches, embedded, posAdded);
    trace?.("vit.ln_pre", x);

    // visual.py:413-415 (the LND permute is a no-op for one image).
    const headDim = width / heads;
    for (let i = 0; i < this.blocks.length; i++) {
      const blk = this.blocks[i];
      // visual.py:294: x = x + attn(ln_1(x)).
      const attnNorm = be.layerNorm(x, blk.ln1.weight, blk.ln1.bias, LN_EPS); // attn_norm: [T, width]
      const q = be.matmul(attnNorm, blk.q).reshape([T, heads, headDim]); // q: [T, heads, hd]
      const k = be.matmul(attnNorm, blk.k).reshape([T, heads, headDim]); // k: [T, heads, hd]
      const v = be.matmul(attnNorm, blk.v).reshape([T, heads, headDim]); // v: [T, heads, hd]
      // visual.py:201-209: softmax(q/√hd · kᵀ), no mask.
      const ctx = be.attention(q, k, v, { scale: 1 / Math.sqrt(headDim), causal: false }); // ctx: [T, heads, hd]
      const attnOut = be.matmul(ctx.reshape([T, width]), blk.out); // visual.py:229, attn_out: [T, width]
      const ffnInp = be.add(x, attnOut); // ffn_inp: [T, width]
      release(attnNorm, q, k, v, ctx, attnOut, x);
      // visual.py:295: x = x + c_proj(gelu(c_fc(ln_2(x)))).
      const ffnNorm = be.layerNorm(ffnInp, blk.ln2.weight, blk.ln2.bias, LN_EPS); // ffn_norm: [T, width]
      const ffnUp = matmulGelu(be, ffnNorm, blk.fc); // ffn_up = gelu(c_fc(ffn_norm)): [T, mlpWidth]
      const ffnOut = be.matmul(ffnUp, blk.proj); // ffn_out: [T, width]
      x = be.add(ffnInp, ffnOut); // x: [T, width]
      release(ffnNorm, ffnUp, ffnOut, ffnInp);
      be.checkFinite(x, `transformer.visual.transformer.resblocks.${i} output`);
      trace?.(`vit.block.${i}`, x);
    }

    const resampled = this.resample(x); // x: [nQueries, E]
    release(x);
    trace?.("vit.resampler", resampled);
    const normed = be.layerNorm(resampled, this.lnPost.weight, this.lnPost.bias, LN_EPS); // visual.py:418
    const out = be.matmul(normed, this.proj); // visual.py:419, image_embeds: [nQueries, E]
    release(resampled, normed);
    be.checkFinite(out, "transformer.visual output (image embeddings)");
    trace?.("image_embeds", out);
    return out;
  }

  /** Resampler.forward (visual.py:133-148): learned queries cross-attend to the patch features. */
  private resample(x: Tensor): Tensor {
    const be = this.backend;
    const r = this.pool;
    const E = this.config.outputDim;
    const T = x.rows;
    const Q = this.nQueries;
    const projected = r.kvProj ? be.matmul(x, r.kvProj) : x; // visual.py:137, [T, E]
    const kv = be.layerNorm(projected, r.lnKv.weight, r.lnKv.bias, LN_EPS); // visual.py:138, kv: [T, E]
    const query = be.layerNorm(r.query, r.lnQ.weight, r.lnQ.bias, LN_EPS); // visual.py:141, query: [Q, E]
    // visual.py:142-146: MultiheadAttention(query + pos_embed, kv + pos_embed(resized), kv).
    const qIn = be.add(query, r.posQ), kIn = be.add(kv, r.posK);
    const q = be.matmul(qIn, r.q).reshape([Q, r.heads, POOL_HEAD_DIM]); // q: [Q, heads, 128]
    const k = be.matmul(kIn, r.k).reshape([T, r.heads, POOL_HEAD_DIM]); // k: [T, heads, 128]
    const v = be.matmul(kv, r.v).reshape([T, r.heads, POOL_HEAD_DIM]); // v: [T, heads, 128]
    const ctx = be.attention(q, k, v, { scale: 1 / Math.sqrt(POOL_HEAD_DIM), causal: false }); // ctx: [Q, heads, 128]
    const out = be.matmul(ctx.reshape([Q, E]), r.out); // out_proj, [Q, E]
    be.release(...(projected !== x ? [projected] : []), kv, query, qIn, kIn, q, k, v, ctx);
    return out;
  }
}

/** Transpose a row-major [rows, cols] matrix. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}
