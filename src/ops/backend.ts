// The op interface: everything the model graph does to tensors goes through a Backend.
//
// Backends: `reference/` (plain TypeScript, one loop nest per op: the oracle every kernel is tested
// against), `src/ops/wasm/` (AssemblyScript WebAssembly SIMD, multi-threaded) and
// `src/ops/webgpu/` (WGSL compute shaders). The graph (src/model/) never touches tensor elements:
// it holds handles, and even the copies it needs (embedding rows, the KV cache, column blocks of a
// fused linear, image embeddings scattered into the prompt) are backend ops, so that a GPU backend
// keeps every activation on the device and the host reads back only what it needs (logits, image
// embeddings, conformance traces).
//
// Conventions
// - A Tensor is a handle: a shape and backend-owned storage (a Float32Array for the CPU backends, a
//   region of a GPU buffer for WebGPU). Values leave a backend only through `read`, which is async.
// - Values enter through `fromHost` (constants at load time: norm weights, tables; small per-call
//   inputs: rotary tables), images through `imagePixels` (decoded bytes: the resize happens in the
//   backend), and weights through `linear` / `embedding`, which may repack or upload.
// - Ops run in issue order and return new tensors; they never modify their inputs. The
//   exceptions are `writeRows`, which writes into its destination (the KV cache, the prompt's
//   image positions) and is named for it, and `ropeWriteKv`, which writes the KV cache likewise.
// - `read(t)` captures t's values at that point of the op stream: t may be released right after.
// - Storage ownership: a returned tensor is the caller's until handed back with `release`. After
//   release(t) the caller must not use t nor any view of it (reshape, sliceRows): the backend may
//   reuse the storage for a later op's output. The graph releases only intermediates it created and
//   never let escape. (Why: on some VMs a fresh 48 KB array costs ~0.2 ms of first-touch page
//   faults, more than a 4096→4096 int4 GEMV's wrapper work; on a GPU, buffer creation is costlier.)
// - Errors: shapes are checked when an op is issued (a clear Error naming the op and shapes).
//   `checkFinite` throws at once on the CPU backends; a GPU backend records the first failing check
//   and throws it from the next `read` (the message names the same tensor).

/** What a backend keeps behind a Tensor; `length` is its number of f32 values. */
export interface TensorStorage {
  readonly length: number;
}

/** A dense row-major f32 tensor handle. The product of `shape` equals `storage.length`. */
export class Tensor<S extends TensorStorage = TensorStorage> {
  constructor(
    readonly shape: readonly number[],
    readonly storage: S,
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (storage.length !== n) {
      throw new Error(`Tensor: shape [${shape.join(", ")}] needs ${n} values, got ${storage.length}`);
    }
  }

  /** Number of values. */
  get size(): number {
    return this.storage.length;
  }

  /** Number of rows when viewed as a matrix [rows, lastDim]. */
  get rows(): number {
    return this.size / this.cols;
  }

  /** Size of the last dimension. */
  get cols(): number {
    return this.shape[this.shape.length - 1];
  }

  /** Same storage, other shape (no copy). */
  reshape(shape: readonly number[]): Tensor<S> {
    return new Tensor(shape, this.storage);
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

/** An embedding table [rows, cols] as stored: f32 values or f16/bf16 bit patterns. */
export interface EmbeddingWeights {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: "f32" | "f16" | "bf16";
  readonly data: Float32Array | Uint16Array;
}

/** A backend-prepared embedding table. Opaque to the graph except for its sizes. */
export interface Embedding {
  readonly rows: number;
  readonly cols: number;
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

export interface ZerosOptions {
  /**
   * Storage that lives long and is written with writeRows (the KV cache). A backend may put it
   * where its ops read it in place (the WASM backend: storage arenas, no staging copy per step).
   */
  readonly longLived?: boolean;
}

/** `be.addRmsNorm` where the backend has it (a GPU saves two dispatches), else its three ops. */
export function addRmsNorm(be: Backend, a: Tensor, b: Tensor, weight: Tensor, eps: number, what: string): { sum: Tensor; normed: Tensor } {
  if (be.addRmsNorm) return be.addRmsNorm(a, b, weight, eps, what);
  const sum = be.add(a, b);
  be.checkFinite(sum, what);
  return { sum, normed: be.rmsNorm(sum, weight, eps) };
}

/** `be.matmulGelu` where the backend has it (the product is not staged twice), else gelu(matmul). */
export function matmulGelu(be: Backend, x: Tensor, w: Linear): Tensor {
  if (be.matmulGelu) return be.matmulGelu(x, w);
  const y = be.matmul(x, w);
  try {
    return be.gelu(y);
  } finally {
    be.release(y);
  }
}

/**
 * `be.swigluMatmul` where the backend has it (the gate is computed while the GEMV stages its
 * input: no [T, F] tensor written and read back), else matmul(swiglu(a, b), w) with a, b the
 * column halves of ab: ab [T, 2F] = [a | b] (the fused w1 | w2 output), result [T, w.outFeatures].
 */
export function swigluMatmul(be: Backend, ab: Tensor, w: Linear): Tensor {
  return be.swigluMatmul ? be.swigluMatmul(ab, w) : swigluThenMatmul(be, ab, w);
}

/** swigluMatmul as its separate ops: the halves of ab, swiglu, matmul (for backends, and cases, without a fused one). */
export function swigluThenMatmul(be: Backend, ab: Tensor, w: Linear): Tensor {
  const F = checkSwigluHalves(ab, w);
  const a = be.sliceColumns(ab, 0, F), b = be.sliceColumns(ab, F, F);
  const gated = be.swiglu(a, b);
  be.release(a, b);
  try {
    return be.matmul(gated, w);
  } finally {
    be.release(gated);
  }
}

/** F, the width of each half of ab [T, 2F], after checking that w takes F inputs. */
export function checkSwigluHalves(ab: Tensor, w: Linear): number {
  const F = ab.cols / 2;
  if (!Number.isInteger(F) || F !== w.inFeatures) {
    throw new Error(`swigluMatmul: input [${ab.shape}] must be [T, 2·${w.inFeatures}] for a layer of ${w.inFeatures} inputs`);
  }
  return F;
}

/**
 * `be.ropeWriteKv` where the backend has it (one dispatch on a GPU, no copies), else its ops:
 * out = rope(qk, cos, sin) with qk [T, 2H, D] = [q heads | k heads], and in place
 * kDst rows start..start+T−1 ← out's k heads [T, H, D], vDst rows start.. ← v [T, H, D].
 * Returns out [T, 2H, D].
 */
export function ropeWriteKv(be: Backend, qk: Tensor, cos: Tensor, sin: Tensor, v: Tensor, kDst: Tensor, vDst: Tensor, start: number): Tensor {
  if (be.ropeWriteKv) return be.ropeWriteKv(qk, cos, sin, v, kDst, vDst, start);
  return ropeThenWriteKv(be, qk, cos, sin, v, kDst, vDst, start);
}

/** ropeWriteKv as its separate ops: rope, then writeRows of the rotated k heads and of v. */
export function ropeThenWriteKv(be: Backend, qk: Tensor, cos: Tensor, sin: Tensor, v: Tensor, kDst: Tensor, vDst: Tensor, start: number): Tensor {
  const [T, H2, D] = qk.shape;
  if (qk.shape.length !== 3 || H2 % 2 !== 0) throw new Error(`ropeWriteKv: qk must be [T, 2H, D], got [${qk.shape}]`);
  const HD = (H2 / 2) * D;
  const out = be.rope(qk, cos, sin);
  const k = be.sliceColumns(out.reshape([T, 2 * HD]), HD, HD).reshape([T, H2 / 2, D]);
  be.writeRows(kDst, start, k);
  be.writeRows(vDst, start, v);
  be.release(k); // a copy when T > 1; a view of out (ignored) when T = 1
  return out;
}

export interface Backend {
  readonly name: string;

  // --- data in and out ---------------------------------------------------------------------

  /** A tensor holding a copy of `data` (row-major, `shape`'s product values). */
  fromHost(data: Float32Array, shape: readonly number[]): Tensor;

  /** A zero-filled tensor. */
  zeros(shape: readonly number[], options?: ZerosOptions): Tensor;

  /**
   * The vision tower's input from a decoded image: `rgb` (8-bit RGB interleaved, [height, width,
   * 3], as loadImage returns it) resized to size×size with Pillow's BICUBIC and CLIP-normalised,
   * as [3, size, size] f32 — bit for bit normalizeCLIP(resizeBicubicPIL(rgb, width, height, size,
   * size), size) of src/image/ (the reference's transform, visual.py:354-360). A GPU backend
   * resizes on the device (the host only uploads the bytes); an image too large for one of its
   * buffers is an error saying so.
   */
  imagePixels(rgb: Uint8Array, width: number, height: number, size: number): Tensor;

  /** The values of t (a fresh array the caller owns), as of this point in the op stream. */
  read(t: Tensor): Promise<Float32Array>;

  /**
   * Throw `${what} contains NaN` (or Inf) when t holds a non-finite value — at once, or (GPU
   * backends, which do not read back per op) from the next `read`.
   */
  checkFinite(t: Tensor, what: string): void;

  // --- weights (handed over once; the backend may repack or upload them) -------------------

  linear(w: LinearWeights): Linear;
  embedding(w: EmbeddingWeights): Embedding;

  // --- copies ------------------------------------------------------------------------------

  /** Rows `ids` of the table, widened to f32: [ids.length, cols]. ids must be in [0, rows). */
  gather(table: Embedding, ids: ArrayLike<number>): Tensor;

  /** Rows `rows` (indices into x's [rows, cols] view) of x: [rows.length, cols]. */
  gatherRows(x: Tensor, rows: readonly number[]): Tensor;

  /** Columns start..start+width−1 of x's [rows, cols] view: [rows, width] (a view when rows = 1). */
  sliceColumns(x: Tensor, start: number, width: number): Tensor;

  /**
   * Rows start..start+n−1 of x's leading dimension, as a tensor of shape [n, ...x.shape[1:]]
   * sharing x's storage (a view: valid while x is, and it sees later writeRows into x).
   */
  sliceRows(x: Tensor, start: number, n: number): Tensor;

  /**
   * The non-overlapping P×P patches of x [C, H, W] (H and W multiples of P) as rows, in raster
   * order over the patch grid, each flattened (c, ky, kx): [(H/P)·(W/P), C·P·P]. The ViT's conv1
   * (stride = kernel = P) is one matmul over these rows (visual.py:405-407).
   */
  patchRows(x: Tensor, P: number): Tensor;

  /**
   * In place: dst's rows start..start+src.shape[0]−1 (leading dimension) ← src. src's other
   * dimensions must equal dst's. Modifies dst (as ropeWriteKv does its kDst, vDst).
   */
  writeRows(dst: Tensor, start: number, src: Tensor): void;

  // --- math --------------------------------------------------------------------------------

  /** y[M,N] = x[M,K]·Wᵀ + b. x may have any leading shape; its last dim must be K. */
  matmul(x: Tensor, w: Linear): Tensor;

  /** LayerNorm over the last dim: (x − mean)/sqrt(var + eps)·weight + bias (biased variance). */
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor;

  /** RMSNorm over the last dim: x / sqrt(mean(x²) + eps) · weight. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor;

  /** Element-wise a + b (same size), or a + b broadcast over rows when b has one row's length. */
  add(a: Tensor, b: Tensor): Tensor;

  /**
   * Optional: the residual step `sum = add(a, b)` (same size), `checkFinite(sum, what)`,
   * `normed = rmsNorm(sum, weight, eps)` as one op, with the values and the error of the three.
   * Call it through `addRmsNorm` below, which falls back to the three ops.
   */
  addRmsNorm?(a: Tensor, b: Tensor, weight: Tensor, eps: number, what: string): { sum: Tensor; normed: Tensor };

  /** Element-wise a · s[row] — one scalar per row of the [rows, cols] view; s has `rows` values. */
  scaleRows(a: Tensor, s: Tensor): Tensor;

  /** GELU, exact erf form: x·½·(1 + erf(x/√2)). */
  gelu(x: Tensor): Tensor;

  /** Optional: gelu(matmul(x, w)) as one op, same values. Call it through `matmulGelu` above. */
  matmulGelu?(x: Tensor, w: Linear): Tensor;

  /** SwiGLU gate: a · silu(b), silu(b) = b / (1 + e^(−b)). */
  swiglu(a: Tensor, b: Tensor): Tensor;

  /**
   * Optional: matmul(swiglu(a, b), w) for ab = [a | b] [T, 2F], same values. Call it through
   * `swigluMatmul` above, which falls back to the two ops.
   */
  swigluMatmul?(ab: Tensor, w: Linear): Tensor;

  /**
   * Rotary embedding, rotate-half form, over x [T, H, D] with tables cos/sin [T, D]:
   *   out = x·cos + rotate_half(x)·sin,   rotate_half([x1, x2]) = [−x2, x1] (halves of D).
   */
  rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor;

  /**
   * Optional: rope of qk [T, 2H, D] (returned) with its k heads written into kDst and v into vDst
   * at rows start.. (in place, like writeRows), same values. Call it through `ropeWriteKv` above.
   */
  ropeWriteKv?(qk: Tensor, cos: Tensor, sin: Tensor, v: Tensor, kDst: Tensor, vDst: Tensor, start: number): Tensor;

  /**
   * Multi-head scaled-dot-product attention.
   * q [Tq, H, D], k [Tk, H, D], v [Tk, H, D] → [Tq, H, D]:
   *   out[t,h] = Σ_s softmax_s(scale · q[t,h]·k[s,h]) · v[s,h]   (masked per options.causal)
   */
  attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor;

  // --- lifetime ----------------------------------------------------------------------------

  /**
   * Hand back tensors this backend returned that the caller will never use again (see "Storage
   * ownership"), including long-lived ones from zeros(). Views and foreign tensors are ignored.
   */
  release(...tensors: Tensor[]): void;

  /** Free everything the backend holds (worker threads, memories, GPU buffers). Optional. */
  dispose?(): void | Promise<void>;
}
