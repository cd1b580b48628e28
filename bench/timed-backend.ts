// A Backend that forwards every call to another and accumulates each op's wall time by label,
// with the work the call did (flop, bytes), so the benchmark can say where the time of a token or
// an image goes and how close each op comes to the machine's limits.
//
// The WASM ops are synchronous (the caller waits for its worker threads inside the call), so the
// wall time around a call is the op's time. Labels: matmuls by weight kind and shape
// ("matmul q4 4096→12288"), attention by query kind ("attention decode" for one query row,
// "attention prefill/vision" otherwise), every other op by its name. It implements the whole
// Backend interface by delegation, so the model runs on it unchanged.
import type { AttentionOptions, Backend, Embedding, EmbeddingWeights, Linear, LinearWeights, Tensor, ZerosOptions } from "../src/ops/backend.js";

/** What one label accumulated. `bound` says which limit its rate is measured against. */
export interface OpStat {
  ms: number;
  calls: number;
  /** Useful floating-point (or integer-dot) operations, 2 per multiply-add. */
  flop: number;
  /** Bytes the op has to move at least: weights for a matmul, K/V for attention, in+out otherwise. */
  bytes: number;
  /**
   * "memory": bytes / time against the streaming read limit; "f32": flop / time against the f32
   * SIMD peak; "q4": flop / time against the GPTQ GEMM kernel's compute ceiling.
   */
  bound: "memory" | "f32" | "q4";
}

interface LinearInfo {
  readonly kind: "q4" | "f32" | "f16" | "bf16";
  readonly K: number;
  readonly N: number;
  /** Weight bytes as stored in the checkpoint (what bench.ts's gemv_q4_*_gbps counts). */
  readonly bytes: number;
}

const count = (t: Tensor): number => t.size;

/** Checkpoint bytes of a linear's weights: packed nibbles + fp16 scales + packed zeros, or K·N elements. */
function weightBytes(w: LinearWeights): number {
  const K = w.inFeatures, N = w.outFeatures;
  if (w.kind === "gptq") {
    const G = K / w.groupSize;
    return (K * N) / 2 + G * N * 2 + (G * N) / 2; // qweight int4, scales f16, qzeros int4
  }
  return K * N * (w.dtype === "f32" ? 4 : 2);
}

export class TimedBackend implements Backend {
  readonly name: string;
  /** Per label; cleared by the caller between phases. */
  readonly stats = new Map<string, OpStat>();
  /** False: calls are forwarded without being recorded (warm-up runs). */
  recording = true;
  private readonly info = new WeakMap<Linear, LinearInfo>();

  // The optional fused ops of the Backend interface exist here exactly when the inner backend has
  // them: the model then takes the same path through this wrapper as without it (the helpers in
  // src/ops/backend.ts test for the method), and a backend without them keeps its separate ops,
  // each timed under its own name.
  readonly addRmsNorm?: Backend["addRmsNorm"];
  readonly matmulGelu?: Backend["matmulGelu"];
  readonly swigluMatmul?: Backend["swigluMatmul"];
  readonly ropeWriteKv?: Backend["ropeWriteKv"];

  constructor(readonly inner: Backend) {
    this.name = inner.name;
    const io = TimedBackend.io;
    if (inner.addRmsNorm) {
      const f = inner.addRmsNorm.bind(inner);
      this.addRmsNorm = (a, b, w, eps, what) => this.time("addRmsNorm", "memory", 0, io(2 * count(a), count(a), count(b)), () => f(a, b, w, eps, what));
    }
    if (inner.matmulGelu) {
      const f = inner.matmulGelu.bind(inner);
      this.matmulGelu = (x, w) => this.timeMatmul(x, w, 1, " + gelu", () => f(x, w));
    }
    if (inner.swigluMatmul) {
      const f = inner.swigluMatmul.bind(inner);
      this.swigluMatmul = (ab, w) => this.timeMatmul(ab, w, 2, " after swiglu", () => f(ab, w));
    }
    if (inner.ropeWriteKv) {
      const f = inner.ropeWriteKv.bind(inner);
      this.ropeWriteKv = (qk, cos, sin, v, kDst, vDst, start) =>
        this.time("ropeWriteKv", "memory", 0, io(count(qk) + 2 * count(v), count(qk), count(v), count(cos), count(sin)),
          () => f(qk, cos, sin, v, kDst, vDst, start));
    }
  }

  /** Sum of the recorded op times (ms). */
  totalMs(): number {
    let s = 0;
    for (const v of this.stats.values()) s += v.ms;
    return s;
  }

  private time<T>(label: string, bound: OpStat["bound"], flop: number, bytes: number, f: () => T): T {
    if (!this.recording) return f();
    const t0 = performance.now();
    const r = f();
    const ms = performance.now() - t0;
    const s = this.stats.get(label) ?? { ms: 0, calls: 0, flop: 0, bytes: 0, bound };
    s.ms += ms;
    s.calls += 1;
    s.flop += flop;
    s.bytes += bytes;
    this.stats.set(label, s);
    return r;
  }

  /** An op that moves values: in + out bytes, timed under its name. */
  private copy<T>(name: string, bytes: number, f: () => T): T {
    return this.time(name, "memory", 0, bytes, f);
  }

  /** In + out bytes of an element-wise op over `inputs` producing one tensor of `out` values. */
  private static io(out: number, ...inputs: number[]): number {
    return 4 * (out + inputs.reduce((a, b) => a + b, 0));
  }

  // --- data in and out: timed too (on a CPU backend they are the copies of the graph) ---------

  fromHost(data: Float32Array, shape: readonly number[]): Tensor {
    return this.copy("fromHost", 8 * data.length, () => this.inner.fromHost(data, shape));
  }

  zeros(shape: readonly number[], options?: ZerosOptions): Tensor {
    return this.copy("zeros", 4 * shape.reduce((a, b) => a * b, 1), () => this.inner.zeros(shape, options));
  }

  imagePixels(rgb: Uint8Array, width: number, height: number, size: number): Tensor {
    return this.copy("imagePixels", rgb.length + 12 * size * size, () => this.inner.imagePixels(rgb, width, height, size));
  }

  /** Not timed as an op: its cost is waiting for the backend, which the caller's phase time holds. */
  read(t: Tensor): Promise<Float32Array> {
    return this.inner.read(t);
  }

  checkFinite(t: Tensor, what: string): void {
    this.copy("checkFinite", 4 * count(t), () => this.inner.checkFinite(t, what));
  }

  // --- weights ----------------------------------------------------------------------------------

  linear(w: LinearWeights): Linear {
    const l = this.inner.linear(w);
    const kind = w.kind === "gptq" ? "q4" : w.dtype;
    this.info.set(l, { kind, K: w.inFeatures, N: w.outFeatures, bytes: weightBytes(w) });
    return l;
  }

  embedding(w: EmbeddingWeights): Embedding {
    return this.inner.embedding(w);
  }

  // --- copies -----------------------------------------------------------------------------------

  gather(table: Embedding, ids: ArrayLike<number>): Tensor {
    return this.copy("gather", 8 * ids.length * table.cols, () => this.inner.gather(table, ids));
  }

  gatherRows(x: Tensor, rows: readonly number[]): Tensor {
    return this.copy("gatherRows", 8 * rows.length * (x.shape[x.shape.length - 1] ?? 1), () => this.inner.gatherRows(x, rows));
  }

  sliceColumns(x: Tensor, start: number, width: number): Tensor {
    const rows = count(x) / x.shape[x.shape.length - 1];
    return this.copy("sliceColumns", 8 * rows * width, () => this.inner.sliceColumns(x, start, width));
  }

  sliceRows(x: Tensor, start: number, n: number): Tensor {
    return this.copy("sliceRows", 0, () => this.inner.sliceRows(x, start, n)); // a view
  }

  patchRows(x: Tensor, P: number): Tensor {
    return this.copy("patchRows", 8 * count(x), () => this.inner.patchRows(x, P));
  }

  writeRows(dst: Tensor, start: number, src: Tensor): void {
    this.copy("writeRows", 8 * count(src), () => this.inner.writeRows(dst, start, src));
  }

  // --- math -------------------------------------------------------------------------------------

  matmul(x: Tensor, w: Linear): Tensor {
    return this.timeMatmul(x, w, 1, "", () => this.inner.matmul(x, w));
  }

  /**
   * A matmul-shaped call on `w`, labelled by weight kind and shape (+ `suffix` for a fused op);
   * x holds `perInput` values per input of w (2 for swigluMatmul's [a | b]).
   */
  private timeMatmul(x: Tensor, w: Linear, perInput: number, suffix: string, f: () => Tensor): Tensor {
    const i = this.info.get(w);
    if (!i) throw new Error("TimedBackend: the linear was not made through this backend's linear()");
    const M = count(x) / (perInput * i.K);
    // One activation row: the weights stream from memory once per call (GEMV). More rows: the
    // same weights serve every row and the kernel is compute-bound.
    const bound: OpStat["bound"] = M === 1 ? "memory" : i.kind === "q4" ? "q4" : "f32";
    const label = `matmul ${i.kind} ${i.K}→${i.N}${M === 1 ? "" : " (M>1)"}${suffix}`;
    return this.time(label, bound, 2 * M * i.K * i.N, i.bytes, f);
  }

  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
    return this.time("layerNorm", "memory", 0, TimedBackend.io(count(x), count(x)), () => this.inner.layerNorm(x, weight, bias, eps));
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    return this.time("rmsNorm", "memory", 0, TimedBackend.io(count(x), count(x)), () => this.inner.rmsNorm(x, weight, eps));
  }

  add(a: Tensor, b: Tensor): Tensor {
    return this.time("add", "memory", 0, TimedBackend.io(count(a), count(a), count(b)), () => this.inner.add(a, b));
  }

  scaleRows(a: Tensor, s: Tensor): Tensor {
    return this.time("scaleRows", "memory", 0, TimedBackend.io(count(a), count(a), count(s)), () => this.inner.scaleRows(a, s));
  }

  gelu(x: Tensor): Tensor {
    return this.time("gelu", "memory", 0, TimedBackend.io(count(x), count(x)), () => this.inner.gelu(x));
  }

  swiglu(a: Tensor, b: Tensor): Tensor {
    return this.time("swiglu", "memory", 0, TimedBackend.io(count(a), count(a), count(b)), () => this.inner.swiglu(a, b));
  }

  rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    return this.time("rope", "memory", 0, TimedBackend.io(count(x), count(x), count(cos), count(sin)), () => this.inner.rope(x, cos, sin));
  }

  attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
    const [Tq, H, D] = q.shape;
    const Tk = k.shape[0];
    // Causal: query t sees queryOffset + t + 1 keys; bidirectional: all Tk.
    const off = options.queryOffset ?? 0;
    const pairs = options.causal ? Tq * (off + (Tq + 1) / 2) : Tq * Tk;
    const flop = 4 * pairs * H * D; // q·k and p·v
    // A single query row reads every cached key and value once: memory-bound.
    const decode = Tq === 1;
    const label = decode ? "attention decode" : options.causal ? "attention prefill" : "attention vision";
    return this.time(label, decode ? "memory" : "f32", flop, 4 * (count(k) + count(v)), () => this.inner.attention(q, k, v, options));
  }

  // --- lifetime ---------------------------------------------------------------------------------

  release(...tensors: Tensor[]): void {
    this.inner.release(...tensors);
  }

  /** Frees the wrapped backend (disposeBackend of src/ops/select.ts calls this). */
  async dispose(): Promise<void> {
    await this.inner.dispose?.();
  }
}
