// The op interface: everything heavy the model graph does goes through a Backend.
//
// Backends: `reference/` (plain TypeScript, one loop nest per op: the oracle every kernel is tested
// against), `src/ops/wasm/` (AssemblyScript WebAssembly SIMD, multi-threaded) and, later, WebGPU.
// The graph (src/model/) never loops over tensor elements itself for anything O(n·d) or more.
//
// Conventions
// - Activations are dense row-major f32 `Tensor`s. A backend may keep its own storage behind
//   `data` (a view into a WebAssembly memory, say) as long as `data` reads back the values.
// - Weights are handed over once, as `LinearWeights`, to `backend.linear()`, which may repack or
//   upload them; the graph keeps only the returned opaque `Linear` handle.
// - Ops return new tensors and never modify their inputs.
// - Storage ownership: a returned tensor is the caller's and stays valid until the caller hands it
//   back with `release` (optional; without it, tensors are plain garbage-collected arrays). After
//   release(t) the caller must not read t, nor any view sharing t.data's buffer (reshape, subarray
//   views): the backend may reuse that memory for the output of a later op. The graph releases
//   only intermediates it created and never let escape. (Why: on some VMs a fresh 48 KB array
//   costs ~0.2 ms of first-touch page faults, more than a 4096→4096 int4 GEMV's wrapper work.)

/** Dense row-major float32 tensor. `data.length` equals the product of `shape`. */
export class Tensor {
  constructor(
    readonly shape: readonly number[],
    readonly data: Float32Array,
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new Error(`Tensor: shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
    }
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
  }

  /** Number of rows when viewed as a matrix [rows, lastDim]. */
  get rows(): number {
    return this.data.length / this.cols;
  }

  /** Size of the last dimension. */
  get cols(): number {
    return this.shape[this.shape.length - 1];
  }

  /** Same data, other shape (no copy). */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(shape, this.data);
  }
}

/** Dense linear layer weights as torch's nn.Linear stores them: weight [out, in], y = x·Wᵀ + b. */
export interface DenseWeights {
  readonly kind: "dense";
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Row-major [outFeatures, inFeatures]. f16/bf16 weights stay as raw 16-bit patterns. */
  readonly weight: Float32Array | Uint16Array;
  readonly dtype: "f32" | "f16" | "bf16";
  readonly bias?: Float32Array;
}

/**
 * GPTQ linear (AutoGPTQ packing, as shipped in Qwen-VL-Chat-Int4):
 *   q[i,o] = (qweight[i/8, o] >> (4*(i%8))) & 15
 *   z[g,o] = (qzeros[g, o/8] >> (4*(o%8))) & 15
 *   W[i,o] = scales[g_idx[i], o] * (q[i,o] - (z[g_idx[i], o] + 1))      y = x·W + bias
 */
export interface GptqWeights {
  readonly kind: "gptq";
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly bits: 4;
  readonly groupSize: number;
  /** int32 [in/8, out] */
  readonly qweight: Int32Array;
  /** int32 [in/groupSize, out/8] */
  readonly qzeros: Int32Array;
  /** fp16 bit patterns [in/groupSize, out] */
  readonly scales: Uint16Array;
  /** int32 [in]: group of each input row */
  readonly gIdx: Int32Array;
  readonly bias?: Float32Array;
}

export type LinearWeights = DenseWeights | GptqWeights;

/** A backend-prepared linear layer. Opaque to the graph except for its sizes. */
export interface Linear {
  readonly inFeatures: number;
  readonly outFeatures: number;
}

export interface AttentionOptions {
  /** Multiplier applied to q·k before softmax (1/sqrt(headDim) in both towers). */
  readonly scale: number;
  /**
   * Causal masking: query row t (absolute position queryOffset + t) sees keys 0..queryOffset+t.
   * Bidirectional (ViT, resampler) when false.
   */
  readonly causal: boolean;
  /** Absolute position of the first query row; the number of cached keys before it. Default 0. */
  readonly queryOffset?: number;
}

export interface Backend {
  readonly name: string;

  /** Take ownership of weights once (repack, upload). */
  linear(w: LinearWeights): Linear;

  /** y[M,N] = x[M,K]·Wᵀ + b. x may have any leading shape; its last dim must be K. */
  matmul(x: Tensor, w: Linear): Tensor;

  /** LayerNorm over the last dim: (x − mean)/sqrt(var + eps)·weight + bias (biased variance). */
  layerNorm(x: Tensor, weight: Float32Array, bias: Float32Array, eps: number): Tensor;

  /** RMSNorm over the last dim: x / sqrt(mean(x²) + eps) · weight. */
  rmsNorm(x: Tensor, weight: Float32Array, eps: number): Tensor;

  /** Element-wise a + b (same shape), or a + b broadcast over rows when b has one row's length. */
  add(a: Tensor, b: Tensor): Tensor;

  /** Element-wise a · s[row] — one scalar per row of the [rows, cols] view. */
  scaleRows(a: Tensor, s: Float32Array): Tensor;

  /** GELU, exact erf form: x·½·(1 + erf(x/√2)). */
  gelu(x: Tensor): Tensor;

  /** SwiGLU gate: a · silu(b), silu(b) = b / (1 + e^(−b)). */
  swiglu(a: Tensor, b: Tensor): Tensor;

  /**
   * Rotary embedding, rotate-half form, over x [T, H, D] with tables cos/sin [T, D]:
   *   out = x·cos + rotate_half(x)·sin,   rotate_half([x1, x2]) = [−x2, x1] (halves of D).
   */
  rope(x: Tensor, cos: Float32Array, sin: Float32Array): Tensor;

  /**
   * Multi-head scaled-dot-product attention.
   * q [Tq, H, D], k [Tk, H, D], v [Tk, H, D] → [Tq, H, D]:
   *   out[t,h] = Σ_s softmax_s(scale · q[t,h]·k[s,h]) · v[s,h]   (masked per options.causal)
   */
  attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor;

  /**
   * Hand back tensors returned by this backend's ops that the caller will never read again (see
   * "Storage ownership" above). Optional; tensors this backend did not allocate are ignored.
   */
  release?(...tensors: Tensor[]): void;

  /**
   * Long-lived storage of n zero-filled floats that this backend's ops can read in place, without
   * the staging copy a plain Float32Array costs them (the KV cache, src/model/qwen.ts). Optional:
   * backends without it get plain arrays. Give it back with freeStorage(buffer) — the whole buffer.
   */
  allocStorage?(n: number): Float32Array;
  freeStorage?(buffer: Float32Array): void;
}

/** The part of a Backend that long-lived buffers come from. */
export type StorageProvider = Required<Pick<Backend, "allocStorage" | "freeStorage">>;
