// WasmBackend: the Backend interface (src/ops/backend.ts) on the AssemblyScript SIMD kernels.
// Each method is a thin wrapper: check shapes, stage inputs in arena scratch, run one kernel over
// the thread pool (strides and splits decided here), copy the result out.
import { hardwareConcurrency as availableParallelism } from "./platform.node.js";
import {
  Tensor, type AttentionOptions, type Backend, type Linear, type LinearWeights, type ZerosOptions,
} from "../backend.js";
import { HostBackendBase, hostData } from "../host.js";
import { shapeSize } from "../checks.js";
import { Arena } from "./arena.js";
import {
  choose, DECODE_Q4, ENV_DECODE_Q4, ENV_PREFILL_Q4, PREFILL_Q4, PROBE_DECODE, PROBE_DECODE_REPS, PROBE_DECODE_WARMUP,
  PROBE_PREFILL, PROBE_PREFILL_REPS, PROBE_PREFILL_WARMUP, probeInput, resolveSetting, timeVariants,
  type ChoiceSource, type DecodeQ4, type PrefillQ4, type ProbeResult, type Q4Tuning,
} from "./autotune.js";
import { loadKernels, type SimdFlavour } from "./module.js";
import { ATTN_QB, GEMV_Q4_I16_STREAMS, GEMV_Q4_STREAMS, GEMV16_STREAMS, GEMV16_TURN_K, KC, KERNELS, MB_Q4, MC, PARALLEL_MIN_WORK } from "./params.js";
import {
  checkGptq, denseBytes, gptqBytes, f16Census, NO_SUBNORMALS, NR, packBias, packDense, packGptq, packGptqSynthetic, packSubnormalTable, paddedCols,
  subnormalTableBytes, type SubnormalTable,
} from "./pack.js";
import { ThreadPool } from "./pool.js";
import { StorageArenas } from "./storage.js";

export interface WasmBackendOptions {
  /** Threads including the caller's. Default os.availableParallelism(). */
  readonly threads?: number;
  /**
   * GPTQ arithmetic. "f32" (default): f32-level accuracy (kernels: decodeQ4 and prefillQ4;
   * docs/precision.md). "fast" (opt-in): activations rounded to one int16 level per group ×
   * int4 weights with i32x4.dot_i16x8_s — rel L2 up to ~1e-4 with outlier activations.
   */
  readonly precision?: "f32" | "fast";
  /**
   * Decode (M = 1) GPTQ kernel in "f32" precision: "i8x3" (x to 24 bits of its group maximum as
   * three 8-bit digits, relaxed i8 dot products), "i16x2" (x as two int16 levels, ~31 bits), "f32"
   * (every nibble converted, f32 FMA) or "auto" (default: the fastest of the three on this machine,
   * timed once per process — autotune.ts). Unset, the environment variable QWENVL_DECODE_Q4 decides
   * (same values).
   */
  readonly decodeQ4?: DecodeQ4 | "auto";
  /**
   * Prefill (M > 1) GPTQ kernel in "f32" precision: "i8x3" (the same 24-bit digits as decode,
   * relaxed i8 dot products, 3 rows per weight unpack), "f32" (exact dequantisation into f32
   * panels, register-tiled f32 GEMM) or "auto" (default: the faster on this machine). Unset, the
   * environment variable QWENVL_PREFILL_Q4 decides.
   */
  readonly prefillQ4?: PrefillQ4 | "auto";
  /** Kernel build: "auto" (relaxed SIMD when the engine has it), "relaxed" or "simd128". */
  readonly simd?: SimdFlavour | "auto";
  /** Weight bytes per arena (one WebAssembly.Memory) before the next is opened. Default 3 GiB. */
  readonly arenaBytes?: number;
}

export type { DecodeQ4, PrefillQ4, Q4Tuning } from "./autotune.js";

interface ProbePart<T extends string> {
  readonly result: ProbeResult<T>;
  readonly ms: number;
}
/** Probe results per process, by "build/threads" (the choice depends on both). */
const decodeWisdom = new Map<string, ProbePart<DecodeQ4>>();
const prefillWisdom = new Map<string, ProbePart<PrefillQ4>>();

/**
 * Released output buffers kept for reuse: a decode step needs about ten distinct lengths
 * (docs/kernels.md, decode step profile); a bound keeps prefill-sized buffers from piling up.
 */
const FREE_PER_LENGTH = 4;
const FREE_MAX_BYTES = 256 * 2 ** 20;

type Kind = "f32" | "f16" | "bf16" | "q4";
const MODE: Record<Kind, number> = { f32: 0, f16: 1, bf16: 2, q4: 3 };

class WasmLinear implements Linear {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly kind: Kind,
    /** The arena holding the weights; activations are staged in its scratch. */
    readonly arena: Arena,
    readonly weight: number,
    readonly bias: number,
    readonly groupSize: number,
    /** 16-bit weights the decode GEMV can widen (no f16 inf/NaN, see assembly/gemv16.ts). */
    readonly gemv16 = false,
    /** An f16 weight's subnormal halves, listed apart (pack.ts, assembly/gemv16.ts). */
    readonly subnormals: SubnormalTable = NO_SUBNORMALS,
  ) {}
}

export class WasmBackend extends HostBackendBase implements Backend {
  readonly name: string;
  readonly threads: number;
  readonly precision: "f32" | "fast";
  readonly flavour: SimdFlavour;
  private readonly decodeSetting: { value: DecodeQ4 | "auto"; source: "option" | "env" | "default" };
  private readonly prefillSetting: { value: PrefillQ4 | "auto"; source: "option" | "env" | "default" };
  private tuned?: Q4Tuning;
  private readonly module: WebAssembly.Module;
  private readonly arenaBytes: number;
  /** Every arena by id: weight arenas and storage arenas (storage.ts). */
  private readonly arenas: Arena[] = [];
  /** The arena new weights go to (the last weight arena). */
  private weightArena: Arena;
  private readonly storage: StorageArenas;
  private readonly pool: ThreadPool;
  /** Output buffers handed out and not yet released (weak: unreleased ones are simply collected). */
  private readonly owned = new WeakSet<Float32Array>();
  /** Released output buffers by length, ready for reuse. */
  private readonly free = new Map<number, Float32Array[]>();
  private freeBytes = 0;

  constructor(options: WasmBackendOptions = {}) {
    super();
    const k = loadKernels(options.simd ?? "auto");
    this.module = k.module;
    this.flavour = k.flavour;
    this.threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()));
    this.precision = options.precision ?? "f32";
    if (this.precision !== "f32" && this.precision !== "fast") {
      throw new Error(`WasmBackend: precision must be "f32" or "fast", got ${String(this.precision)}`);
    }
    // Resolved now (so that a bad name fails at construction), probed lazily (tuning below).
    this.decodeSetting = resolveSetting("decodeQ4", options.decodeQ4, ENV_DECODE_Q4, DECODE_Q4);
    this.prefillSetting = resolveSetting("prefillQ4", options.prefillQ4, ENV_PREFILL_Q4, PREFILL_Q4);
    this.arenaBytes = options.arenaBytes ?? 3 * 2 ** 30;
    const first = new Arena(0, this.module, this.arenaBytes);
    this.arenas.push(first);
    this.weightArena = first;
    this.pool = new ThreadPool(this.threads, this.module, KERNELS, first);
    this.storage = new StorageArenas(() => this.openArena(), this.arenaBytes);
    this.name = `wasm-${this.flavour}-${this.threads}t${this.precision === "fast" ? "-fast" : ""}`;
  }

  /** Stop the worker threads (they never keep the process alive, but this frees them now). */
  dispose(): void {
    this.pool.dispose();
  }

  /**
   * The GPTQ kernels this backend runs and why: forced (option, environment variable) or chosen by
   * a short timed probe on this machine, once per process for each build and thread count
   * (autotune.ts). Runs the probe on first use: the first GPTQ linear() or matmul, or this getter.
   */
  get tuning(): Q4Tuning {
    return (this.tuned ??= this.tune());
  }

  /** Decode (M = 1) GPTQ kernel in use (see tuning). */
  get decodeQ4(): DecodeQ4 {
    return this.tuning.decodeQ4;
  }

  /** Prefill (M > 1) GPTQ kernel in use (see tuning). */
  get prefillQ4(): PrefillQ4 {
    return this.tuning.prefillQ4;
  }

  private tune(): Q4Tuning {
    const key = `${this.flavour}/${this.threads}`;
    // Without a probe the build's default stands: the relaxed build has the one-instruction i8 dot
    // on CPUs with VNNI; the SIMD128 build would emulate it (docs/kernels.md).
    const builtIn = { decode: (this.flavour === "relaxed" ? "i8x3" : "i16x2") as DecodeQ4, prefill: (this.flavour === "relaxed" ? "i8x3" : "f32") as PrefillQ4 };
    let probeMs = 0;
    let cached = false;
    const part = <T extends string>(
      setting: { value: T | "auto"; source: "option" | "env" | "default" },
      envName: string,
      optName: string,
      fallback: T,
      wisdom: Map<string, ProbePart<T>>,
      probe: () => ProbePart<T>,
    ): { choice: T; source: ChoiceSource; reason: string; timings?: ProbeResult<T>["timings"] } => {
      if (setting.value !== "auto") {
        const by = setting.source === "env" ? `${envName}=${setting.value}` : `option ${optName}: "${setting.value}"`;
        return { choice: setting.value, source: setting.source === "env" ? "env" : "option", reason: `forced by ${by}` };
      }
      if (this.precision === "fast") {
        return { choice: fallback, source: "not probed", reason: "precision \"fast\": GPTQ layers run the one-level int16 kernel" };
      }
      let p = wisdom.get(key);
      if (p) cached = true;
      else wisdom.set(key, (p = probe()));
      probeMs += p.ms;
      return { choice: p.result.choice, source: "probe", reason: p.result.reason, timings: p.result.timings };
    };
    const d = part(this.decodeSetting, ENV_DECODE_Q4, "decodeQ4", builtIn.decode, decodeWisdom, () =>
      this.probe(PROBE_DECODE, DECODE_Q4, builtIn.decode, PROBE_DECODE_REPS, PROBE_DECODE_WARMUP));
    const p = part(this.prefillSetting, ENV_PREFILL_Q4, "prefillQ4", builtIn.prefill, prefillWisdom, () =>
      this.probe(PROBE_PREFILL, PREFILL_Q4, builtIn.prefill, PROBE_PREFILL_REPS, PROBE_PREFILL_WARMUP));
    return {
      decodeQ4: d.choice,
      prefillQ4: p.choice,
      source: { decodeQ4: d.source, prefillQ4: p.source },
      probeMs: Math.round(probeMs * 10) / 10,
      cached,
      shapes: { decode: PROBE_DECODE, prefill: PROBE_PREFILL },
      timings: { ...(d.timings && { decodeQ4: d.timings }), ...(p.timings && { prefillQ4: p.timings }) },
      reason: { decodeQ4: d.reason, prefillQ4: p.reason },
    };
  }

  /**
   * Time each variant on one synthetic GPTQ layer of shape [M, K, N], staged in arena 0 above its
   * weights; the arena's weight top is restored afterwards, so the probe leaves nothing behind.
   */
  private probe<T extends DecodeQ4 | PrefillQ4>(
    shape: readonly number[], variants: readonly T[], preferred: T, reps: number, warmup: number,
  ): ProbePart<T> {
    const t0 = performance.now();
    const [M, K, N] = shape;
    const a = this.act;
    const top = a.top;
    try {
      const gs = 128;
      const lin = new WasmLinear(K, N, "q4", a, packGptqSynthetic(a, K, N, gs), packBias(a, N, undefined, "probe"), gs);
      const x = probeInput(M, K);
      const np = paddedCols(N);
      // Each variant's staging gets its own scratch: bump the top past it before the next.
      const room = M * K * 16 + M * np * 8 + (K / gs) * M * 16 + this.threads * gs * NR * 4 + 4096;
      const runs = new Map<T, () => void>();
      for (const v of variants) {
        runs.set(v, this.stageMatmul(x, lin, v).run);
        a.allocWeights(room);
      }
      const result = choose(timeVariants(runs, reps, warmup), preferred);
      return { result, ms: performance.now() - t0 };
    } finally {
      a.top = top;
    }
  }

  /** Number of arenas (WebAssembly memories) opened so far. */
  get arenaCount(): number {
    return this.arenas.length;
  }

  /** Arena 0 holds activations of ops without weights (and the first weights). */
  private get act(): Arena {
    return this.arenas[0];
  }

  private arenaFor(bytes: number): Arena {
    if (this.weightArena.fits(bytes)) return this.weightArena;
    this.weightArena = this.openArena();
    return this.weightArena;
  }

  private openArena(): Arena {
    const a = new Arena(this.arenas.length, this.module, this.arenaBytes);
    this.arenas.push(a);
    this.pool.addArena(a);
    return a;
  }

  /**
   * Zero-filled tensor. Long-lived ones (the KV cache) go to storage arenas, where ops read them in
   * place: attention on keys and values that live there skips staging them, which for a decode
   * step was a copy of the whole cache. release() gives their blocks back.
   */
  override zeros(shape: readonly number[], options?: ZerosOptions): Tensor {
    if (!options?.longLived) return super.zeros(shape);
    return new Tensor(shape, this.storage.alloc(shapeSize(shape, "zeros")));
  }

  /** Bytes of storage handed out and not yet freed (tests). */
  get storageBytes(): number {
    return this.storage.liveBytes;
  }


  linear(w: LinearWeights): Linear {
    const { inFeatures: K, outFeatures: N } = w;
    if (!(K > 0 && N > 0)) throw new Error(`linear: bad sizes in=${K} out=${N}`);
    if (w.kind === "gptq") {
      checkGptq(w);
      // Choose the kernels now (load time) rather than in the first token.
      if (this.precision === "f32") void this.tuning;
      const arena = this.arenaFor(gptqBytes(w));
      const weight = packGptq(arena, w);
      const bias = packBias(arena, N, w.bias, "linear (GPTQ)");
      return new WasmLinear(K, N, "q4", arena, weight, bias, w.groupSize);
    }
    if (w.weight.length !== K * N) {
      throw new Error(`linear: weight has ${w.weight.length} values, expected [${N}, ${K}]`);
    }
    // f16: one census pass. Inf/NaN halves keep the weight on the GEMM path; subnormal ones go to
    // a table (only where the GEMV can run: it and the GEMM both read the table).
    const census = w.dtype === "f16" ? f16Census(w.weight as Uint16Array) : { infNaN: false, subnormals: 0 };
    const gemv16 = w.dtype === "bf16" || (w.dtype === "f16" && !census.infNaN);
    const listed = gemv16 && w.dtype === "f16" ? census.subnormals : 0;
    const arena = this.arenaFor(denseBytes(w) + subnormalTableBytes(paddedCols(N), listed));
    const weight = packDense(arena, w);
    const bias = packBias(arena, N, w.bias, "linear");
    const subnormals = packSubnormalTable(arena, weight, K, paddedCols(N), listed);
    return new WasmLinear(K, N, w.dtype, arena, weight, bias, 0, gemv16, subnormals);
  }

  matmul(x: Tensor, w: Linear): Tensor {
    return this.matmulThen(x, w, false);
  }

  /**
   * gelu(matmul(x, w)) with GELU run in place on the product while it is still in the arena:
   * saves staging the [M, N] product back in and copying a second result out (for the ViT's
   * c_fc, 1024 × 8192, that was ~11 ms of a ~25 ms GELU op). Same kernels, same values.
   */
  matmulGelu(x: Tensor, w: Linear): Tensor {
    return this.matmulThen(x, w, true);
  }

  private matmulThen(x: Tensor, w: Linear, gelu: boolean): Tensor {
    if (!(w instanceof WasmLinear)) throw new Error("matmul: the Linear was not made by this WasmBackend");
    const K = w.inFeatures, N = w.outFeatures;
    if (x.cols !== K) throw new Error(`matmul: x has last dim ${x.cols}, the linear expects ${K}`);
    const outShape = [...x.shape.slice(0, -1), N];
    if (x.rows === 0) return this.zeros(outShape);
    const { run, c } = this.stageMatmul(x, w);
    run();
    const M = x.rows, np = paddedCols(N), a = w.arena;
    // Padding columns hold gelu(0) = 0 afterwards and are dropped below.
    if (gelu) this.pool.run(a, "gelu", [c, c], M * np, 1024, M * np >= PARALLEL_MIN_WORK);
    const out = this.alloc(M * N);
    if (np === N) {
      out.set(a.f32(c, M * N));
    } else {
      const src = a.f32(c, M * np);
      for (let m = 0; m < M; m++) out.set(src.subarray(m * np, m * np + N), m * N);
    }
    return new Tensor(outShape, out);
  }

  /**
   * Copy x into the weights' arena scratch and return the kernel run (which may be repeated: the
   * benchmark times it alone) and where C [M, Np] will be.
   */
  private stageMatmul(x: Tensor, w: WasmLinear, q4?: DecodeQ4 | PrefillQ4): { run: () => void; c: number } {
    const K = w.inFeatures, N = w.outFeatures, M = x.rows;
    const np = paddedCols(N);
    const a = w.arena;
    const parallel = M * K * N >= PARALLEL_MIN_WORK;
    // The integer kernels are exact in i32 up to groups of 1024 rows (assembly/gemv_q4.ts).
    const intOk = w.kind === "q4" && w.groupSize <= 1024;
    // The GPTQ kernel: given (the probe) or this backend's choice (which may run the probe).
    const kern = w.kind !== "q4" || (this.precision === "fast" && intOk) ? undefined : (q4 ?? (M === 1 ? this.decodeQ4 : this.prefillQ4));
    if (intOk && this.precision === "fast") {
      const gs = w.groupSize, G = K / gs;
      const [xp, act, sa, rs, cp] = a.scratch([M * K * 4, M * K * 2, M * G * 4, M * G * 4, M * np * 4]);
      a.f32(xp, M * K).set(hostData(x));
      const run = (): void => {
        a.k.q4_quantize_rows(xp, M, K, gs, act, sa, rs);
        // Decode (M = 1) runs the kernel's one-row path; measured faster than a two-quad variant.
        this.pool.run(a, "gemm_q4_i16", [act, sa, rs, M, K, gs, w.weight, w.bias, cp, np, MB_Q4], N / 4, 1, parallel);
      };
      return { run, c: cp };
    }
    if (intOk && kern === "i8x3") {
      // x as three 8-bit digits per (row, group): 24 bits of the group maximum; int4 × int8 dots.
      const gs = w.groupSize, G = K / gs;
      const [xp, act, sums, sc, cp] = a.scratch([M * K * 4, M * K * 3, M * G * 8, M * G * 4, M * np * 4]);
      a.f32(xp, M * K).set(hostData(x));
      const run = (): void => {
        // One row is ~20 µs: threads only pay off for prefill.
        if (M === 1) a.k.q4_quantize_digits(xp, 1, K, gs, act, sums, sc);
        else this.pool.run(a, "q4_quantize_digits_t", [xp, K, gs, act, sums, sc], M, 1, parallel);
        if (M === 1) this.pool.run(a, "gemv_q4_i8x3", [act, sums, sc, K, gs, w.weight, N / 4, w.bias, cp, GEMV_Q4_STREAMS], N / 4, 1, parallel);
        else this.pool.run(a, "gemm_q4_i8x3", [act, sums, sc, M, K, gs, w.weight, w.bias, cp, np, MB_Q4], N / 4, 1, parallel);
      };
      return { run, c: cp };
    }
    if (intOk && M === 1 && kern === "i16x2") {
      // Decode: two int16 levels of x (error below f32 rounding), int4 × int16 dot products.
      const gs = w.groupSize, G = K / gs;
      const [xp, act, sums, sa, cp] = a.scratch([K * 4, K * 4, G * 8, G * 4, np * 4]);
      a.f32(xp, K).set(hostData(x));
      const run = (): void => {
        a.k.q4_quantize_i16x2(xp, K, gs, act, sums, sa);
        // Work units are pairs of column quads (N % 8 == 0: checkGptq).
        this.pool.run(a, "gemv_q4_i16x2", [act, sums, sa, K, gs, w.weight, N / 4, w.bias, cp, GEMV_Q4_I16_STREAMS], N / 8, 1, parallel);
      };
      return { run, c: cp };
    }
    if (w.kind === "q4" && M === 1) {
      // Decode, f32 arithmetic: the GEMV needs Σx per group (f64 sums, rounded once).
      const gs = w.groupSize, G = K / gs;
      const [xp, xs, cp] = a.scratch([K * 4, G * 4, np * 4]);
      a.f32(xp, K).set(hostData(x));
      const sums = a.f32(xs, G);
      const xd = hostData(x);
      for (let g = 0; g < G; g++) {
        let s = 0;
        for (let k = g * gs; k < (g + 1) * gs; k++) s += xd[k];
        sums[g] = s;
      }
      const run = (): void => this.pool.run(a, "gemv_q4_f32", [xp, xs, K, gs, w.weight, N / 4, w.bias, cp], N / 4, 1, parallel);
      return { run, c: cp };
    }
    if (M === 1 && w.gemv16) {
      // Decode on f16/bf16 weights (the 151936-row lm_head): widen in registers, one pass.
      const [xp, cp] = a.scratch([K * 4, np * 4]);
      a.f32(xp, K).set(hostData(x));
      const t = w.subnormals;
      const args = [MODE[w.kind], xp, K, w.weight, w.bias, cp, t.offs, t.ents, GEMV16_STREAMS, GEMV16_TURN_K];
      return { run: () => this.pool.run(a, "gemv16", args, np / NR, 2, parallel), c: cp };
    }
    const kc = w.kind === "q4" ? w.groupSize : KC;
    const [xp, cp, panels] = a.scratch([M * K * 4, M * np * 4, this.threads * kc * NR * 4]);
    a.f32(xp, M * K).set(hostData(x));
    const args = [MODE[w.kind], xp, M, K, w.weight, w.bias, cp, np, kc, MC, panels, w.subnormals.offs, w.subnormals.ents];
    return { run: () => this.pool.run(a, "gemm", args, np / NR, 1, parallel), c: cp };
  }

  /**
   * Benchmarks: stage x for `w` once and return the bare kernel run (no input copy, no output
   * allocation), to separate kernel speed from the wrapper's copies. Valid until the next op.
   */
  matmulKernel(x: Tensor, w: Linear): () => void {
    if (!(w instanceof WasmLinear) || x.cols !== w.inFeatures) throw new Error("matmulKernel: bad arguments");
    return this.stageMatmul(x, w).run;
  }

  /** Stage tensors in arena 0 scratch, plus an output block of `outLen` floats. */
  private stage(inputs: readonly Float32Array[], outLen: number): { ptrs: number[]; out: number } {
    const a = this.act;
    const ptrs = a.scratch([...inputs.map((d) => d.length * 4), outLen * 4]);
    inputs.forEach((d, i) => a.f32(ptrs[i], d.length).set(d));
    return { ptrs, out: ptrs[inputs.length] };
  }

  private result(shape: readonly number[], out: number, n: number, arena: Arena = this.act): Tensor {
    const data = this.alloc(n);
    data.set(arena.f32(out, n));
    return new Tensor(shape, data);
  }

  /** Output storage of n floats: a released buffer of that length if one is free, else a new one. */
  protected override alloc(n: number): Float32Array {
    const list = this.free.get(n);
    const buf = list?.pop();
    if (buf) {
      this.freeBytes -= buf.byteLength;
      this.owned.add(buf);
      return buf;
    }
    const fresh = new Float32Array(n);
    this.owned.add(fresh);
    return fresh;
  }

  /**
   * Take back outputs the caller is done with (src/ops/backend.ts, "Storage ownership"). Only
   * whole buffers this backend handed out are kept — views and foreign arrays are ignored, and
   * a buffer already released is not listed twice — up to FREE_PER_LENGTH buffers per length and
   * FREE_MAX_BYTES in all.
   */
  release(...tensors: Tensor[]): void {
    for (const t of tensors) {
      const d = hostData(t);
      if (this.storage.isBlock(d)) {
        this.storage.free(d);
        continue;
      }
      if (!this.owned.delete(d)) continue;
      if (this.freeBytes + d.byteLength > FREE_MAX_BYTES) continue;
      let list = this.free.get(d.length);
      if (!list) this.free.set(d.length, (list = []));
      if (list.length >= FREE_PER_LENGTH) continue;
      list.push(d);
      this.freeBytes += d.byteLength;
    }
  }

  /** Row-wise op over x [rows, cols]: kernel(x, extra…, out, cols, eps, r0, r1, tid). */
  private rowwise(fn: string, x: Tensor, extra: readonly Float32Array[], scalars: readonly number[]): Tensor {
    const cols = x.cols, rows = x.rows;
    const { ptrs, out } = this.stage([hostData(x), ...extra], x.size);
    this.pool.run(this.act, fn, [...ptrs.slice(0, 1 + extra.length), out, cols, ...scalars], rows, 1, x.size >= PARALLEL_MIN_WORK);
    return this.result(x.shape, out, x.size);
  }

  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
    if (weight.size !== x.cols || bias.size !== x.cols) {
      throw new Error(`layerNorm: weight/bias have ${weight.size}/${bias.size} values, x has ${x.cols} columns`);
    }
    return this.rowwise("layer_norm", x, [hostData(weight), hostData(bias)], [eps]);
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    if (weight.size !== x.cols) throw new Error(`rmsNorm: weight has ${weight.size} values, x has ${x.cols} columns`);
    return this.rowwise("rms_norm", x, [hostData(weight)], [eps]);
  }

  scaleRows(a: Tensor, s: Tensor): Tensor {
    if (s.size !== a.rows) throw new Error(`scaleRows: ${s.size} scales for ${a.rows} rows`);
    return this.rowwise("scale_rows", a, [hostData(s)], []);
  }

  add(a: Tensor, b: Tensor): Tensor {
    // Same rule as the oracle: equal sizes add element-wise, one row's worth broadcasts over rows.
    if (b.size === a.size) return this.elementwise("add", [hostData(a), hostData(b)], a.shape);
    if (b.size === a.cols) return this.rowwise("add_rows", a, [hostData(b)], []);
    throw new Error(`add: b [${b.shape.join(", ")}] is neither a's shape [${a.shape.join(", ")}] nor one row of it`);
  }

  /** Flat element-wise kernel(in…, out, i0, i1, tid); slices in multiples of 4 elements. */
  private elementwise(fn: string, inputs: readonly Float32Array[], shape: readonly number[]): Tensor {
    const n = inputs[0].length;
    const { ptrs, out } = this.stage(inputs, n);
    this.pool.run(this.act, fn, [...ptrs.slice(0, inputs.length), out], n, 1024, n >= PARALLEL_MIN_WORK);
    return this.result(shape, out, n);
  }

  gelu(x: Tensor): Tensor {
    return this.elementwise("gelu", [hostData(x)], x.shape);
  }

  swiglu(a: Tensor, b: Tensor): Tensor {
    if (a.size !== b.size) throw new Error(`swiglu: a has ${a.size} values, b ${b.size}`);
    return this.elementwise("swiglu", [hostData(a), hostData(b)], a.shape);
  }

  rope(x: Tensor, cosT: Tensor, sinT: Tensor): Tensor {
    const cos = hostData(cosT), sin = hostData(sinT);
    if (x.shape.length !== 3) throw new Error(`rope: x must be [T, H, D], got [${x.shape.join(", ")}]`);
    const [T, H, D] = x.shape;
    if (D % 2 !== 0) throw new Error(`rope: head dim ${D} is odd`);
    if (cos.length !== T * D || sin.length !== T * D) {
      throw new Error(`rope: cos/sin have ${cos.length}/${sin.length} values, expected [${T}, ${D}]`);
    }
    const { ptrs, out } = this.stage([hostData(x), cos, sin], x.size);
    this.pool.run(this.act, "rope", [ptrs[0], ptrs[1], ptrs[2], out, H, D], T * H, 1, x.size >= PARALLEL_MIN_WORK);
    return this.result(x.shape, out, x.size);
  }

  attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
    if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3) {
      throw new Error("attention: q, k, v must be [T, H, D]");
    }
    const [Tq, H, D] = q.shape;
    const Tk = k.shape[0];
    if (k.shape[1] !== H || k.shape[2] !== D || v.shape[0] !== Tk || v.shape[1] !== H || v.shape[2] !== D) {
      throw new Error(`attention: q [${q.shape.join(", ")}], k [${k.shape.join(", ")}], v [${v.shape.join(", ")}] do not match`);
    }
    const off = options.queryOffset ?? 0;
    if (!(off >= 0) || !Number.isInteger(off)) throw new Error(`attention: queryOffset ${off} is not a non-negative integer`);
    // Keys and values in one storage arena (zeros with longLived: the KV cache) are read where they are;
    // anything else is staged into arena 0 first.
    const home = this.storage.home(hostData(k));
    const inPlace = home !== undefined && this.storage.home(hostData(v)) === home;
    const a = inPlace ? home : this.act;
    if (Tq === 1 && D % 4 === 0 && Tk > 0) {
      // Decode: one query row reads K, V in place (assembly/attention.ts attn_decode); only the
      // keys it can see are used.
      const n = options.causal ? Math.min(Tk, off + 1) : Tk;
      const row = H * D;
      const [qp, op, sp, kp0, vp0] = a.scratch([row * 4, row * 4, this.threads * H * (n + D + 1) * 4, inPlace ? 0 : n * row * 4, inPlace ? 0 : n * row * 4]);
      a.f32(qp, row).set(hostData(q));
      let kp = hostData(k).byteOffset, vp = hostData(v).byteOffset;
      if (!inPlace) {
        a.f32(kp0, n * row).set(hostData(k).subarray(0, n * row));
        a.f32(vp0, n * row).set(hostData(v).subarray(0, n * row));
        kp = kp0;
        vp = vp0;
      }
      this.pool.run(a, "attn_decode", [qp, kp, vp, op, n, H, D, options.scale, n, sp], H, 1, n * row >= PARALLEL_MIN_WORK);
      return this.result(q.shape, op, row, a);
    }
    // assembly/attention.ts: pack K, V per head into GEMM panels, then blocks of ATTN_QB query rows.
    const tkp = Math.ceil(Tk / 8) * 8, dp = Math.ceil(D / 8) * 8;
    const kn = Tk * H * D;
    const [qp, kpk, vpk, op, sp, kp0, vp0] = a.scratch([
      q.size * 4, H * tkp * D * 4, H * dp * Tk * 4, q.size * 4, this.threads * ATTN_QB * (tkp + dp + 1) * 4,
      inPlace ? 0 : kn * 4, inPlace ? 0 : kn * 4,
    ]);
    a.f32(qp, q.size).set(hostData(q));
    let kp = hostData(k).byteOffset, vp = hostData(v).byteOffset;
    if (!inPlace) {
      a.f32(kp0, kn).set(hostData(k).subarray(0, kn));
      a.f32(vp0, kn).set(hostData(v).subarray(0, kn));
      kp = kp0;
      vp = vp0;
    }
    const parallel = Tq * Tk * H * D >= PARALLEL_MIN_WORK;
    this.pool.run(a, "attn_pack", [kp, vp, kpk, vpk, Tk, H, D], H, 1, parallel);
    const units = H * Math.ceil(Tq / ATTN_QB);
    this.pool.run(a, "attention", [qp, kpk, vpk, op, Tq, Tk, H, D, options.scale, options.causal ? 1 : 0, off, sp], units, 1, parallel);
    return this.result(q.shape, op, q.size, a);
  }

  /** Run a pool kernel on arena 0 (benchmarks: the machine-limit probes of assembly/peak.ts). */
  runKernel(fn: string, args: readonly number[], units: number): void {
    this.pool.run(this.act, fn, args, units, 1, true);
  }

  /** Scratch in arena 0 (benchmarks). */
  scratch(bytes: number): { ptr: number; f32: (n: number) => Float32Array } {
    const [ptr] = this.act.scratch([bytes]);
    return { ptr, f32: (n: number) => this.act.f32(ptr, n) };
  }
}
