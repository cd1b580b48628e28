// The WebGPU backend: WGSL compute shaders (src/ops/webgpu/wgsl/) behind the Backend interface.
//
// Every tensor lives in a device buffer (GpuStorage: buffer + element offset, so views such as
// sliceRows are free); every op encodes dispatches into one pending command encoder that is
// submitted when a value is read and every 64 dispatches (context.ts). The wrappers here decide
// shapes, strides and dispatch sizes; design and measurements in docs/webgpu.md.
/// <reference types="@webgpu/types" />
import {
  Tensor, checkSwigluHalves, ropeThenWriteKv, swigluThenMatmul,
  type AttentionOptions, type Backend, type Embedding, type EmbeddingWeights, type Linear,
  type LinearWeights, type ZerosOptions,
} from "../backend.js";
import {
  checkColumnRange, checkEmbeddingWeights, checkGatherIds, checkImagePixels, checkPatchRows, checkRowIndices, checkRowRange,
  checkWriteRows, shapeSize,
} from "../checks.js";
import { clipNormalizeTable } from "../../image/preprocess.js";
import { GpuContext, GpuStorage, type PooledBuffer } from "./context.js";
import { acquireDevice, loadShaders, type AdapterReport, type WebGpuDeviceOptions } from "./device.js";
import { MMA_KERNELS, encodeAttention } from "./mma.js";
import { GpuLinear, encodeMatmul, gluFusable, uploadLinear, type DenseGemmKernel } from "./linear.js";
import { encodeImagePixels } from "./image.js";

export interface WebGpuBackendOptions extends WebGpuDeviceOptions {
  /** Where a browser fetches the .wgsl files from (default: next to this module's package). */
  readonly shaderBaseUrl?: string | URL;
  /**
   * Split weights into chunks as if one storage binding held at most this many bytes (default: the device's
   * limit, below 2 GiB). Lets tests exercise the split paths with small layers.
   */
  readonly weightChunkBytes?: number;
  /** Run every dense matmul with M > 1 on this kernel (default: linear.ts's choice by shape); for tests and benchmarks. */
  readonly denseGemm?: DenseGemmKernel;
}

export interface WebGpuCounters {
  readonly dispatches: number;
  readonly submits: number;
  readonly bindGroupsCreated: number;
  readonly bindGroupsReused: number;
  readonly bindGroupsCached: number;
  readonly encodeMs: number;
  readonly submitMs: number;
}

class GpuEmbedding implements Embedding {
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly dtype: number,
    /** Row ranges [r0, r0 + n) and their buffers, each within the binding limit. */
    readonly chunks: ReadonlyArray<{ r0: number; n: number; buffer: GPUBuffer }>,
  ) {}
}

type GpuTensor = Tensor<GpuStorage>;


/** Scores scratch of attention above this many bytes is computed a few heads at a time. */
const ATTENTION_SCRATCH_BYTES = 64 * 2 ** 20; // 64 MiB: ViT-bigG at 1024 tokens holds 4 heads per pass
/** Queries up to which attention is split over the keys (att_split + att_combine): a decode step has 1. */
const ATT_SPLIT_MAX_TQ = 4;
/** Keys per workgroup of att_split.wgsl (BK) and its largest head dim (DMAX). */
const ATT_SPLIT_KEYS = 32;
const ATT_SPLIT_MAX_D = 256;
/** Queries per workgroup of att_flash.wgsl (BQ), its largest head dim (DMAX) and its workgroup memory in bytes. */
const ATT_FLASH_QUERIES = 32;
const ATT_FLASH_MAX_D = 128;
const ATT_FLASH_SHARED_BYTES = 16 * (32 * 33 + 32 * 17) + 4 * (32 * 33 + 256 + 3 * 32); // qs, kv (vec4), sp, red, row_m/l/a

export class WebGpuBackend implements Backend {
  readonly name: string;
  /** What the adapter is and offers (features the kernels may use, binding limits). */
  readonly report: AdapterReport;
  private readonly ctx: GpuContext;
  /** Bound where a shader's optional input (a bias) is absent. */
  private readonly dummy: PooledBuffer;
  /** clipNormalizeTable() on the device, uploaded by the first imagePixels. */
  private clipTable: GPUBuffer | null = null;

  private constructor(ctx: GpuContext, report: AdapterReport) {
    this.ctx = ctx;
    this.report = report;
    const what = [report.vendor, report.architecture, report.description || report.device].filter((s) => s).join(" ");
    const mma = report.matrixF16 ? `; matrix units: ${MMA_KERNELS[report.mmaKernel].name}${report.mmaNote ? ` (${report.mmaNote})` : ""}` : "";
    this.name = `webgpu (${what || "unknown adapter"}; features: ${report.features.join(", ") || "none"}${mma})`;
    this.dummy = ctx.take(4);
  }

  /** Request an adapter and device and load the shaders; throws when there is no adapter. */
  static async create(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    const [{ device, report }, shaders] = await Promise.all([acquireDevice(options), loadShaders(options.shaderBaseUrl)]);
    return new WebGpuBackend(new GpuContext(device, shaders, options.weightChunkBytes, options.denseGemm, report.matrixF16,
      MMA_KERNELS[report.mmaKernel]), report);
  }

  /**
   * For benchmarks, since the backend was made: dispatches/copies encoded, submits, bind groups
   * made and reused (context.ts caches them), and host milliseconds spent encoding (dispatch,
   * copy, clear) and submitting (parameter write, finish, submit).
   */
  get counters(): WebGpuCounters {
    const ctx = this.ctx;
    const g = ctx.bindGroupCounts;
    return {
      dispatches: ctx.dispatches, submits: ctx.submits, bindGroupsCreated: g.created, bindGroupsReused: g.reused,
      bindGroupsCached: g.cached, encodeMs: ctx.encodeMs, submitMs: ctx.submitMs,
    };
  }

  // --- helpers -----------------------------------------------------------------------------

  private st(t: Tensor, op: string): GpuStorage {
    if (!(t.storage instanceof GpuStorage)) throw new Error(`${op}: tensor [${t.shape.join(", ")}] was not made by the webgpu backend`);
    return t.storage;
  }

  private out(shape: readonly number[], n: number): GpuTensor {
    return new Tensor(shape, new GpuStorage(this.ctx.take(n * 4), 0, n, false));
  }

  private elementwise(name: string, n: number, params: number[], bufs: PooledBuffer[]): void {
    if (n > 0) this.ctx.dispatch(name, [n, ...params], 0, bufs, this.ctx.grid(n, 256));
  }

  // --- data in and out ---------------------------------------------------------------------

  fromHost(data: Float32Array, shape: readonly number[]): Tensor {
    const n = shapeSize(shape, "fromHost");
    if (data.length !== n) throw new Error(`fromHost: shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
    return new Tensor(shape, new GpuStorage(this.ctx.upload(data), 0, n, false));
  }

  zeros(shape: readonly number[], _options?: ZerosOptions): Tensor {
    // Long-lived storage needs nothing special here: every buffer is read in place by the shaders.
    const n = shapeSize(shape, "zeros");
    const t = this.out(shape, n);
    this.ctx.clear(t.storage.buf, 0, n * 4);
    return t;
  }

  imagePixels(rgb: Uint8Array, width: number, height: number, size: number): Tensor {
    checkImagePixels(rgb, width, height, size);
    this.clipTable ??= this.ctx.weightBuffer(clipNormalizeTable(), "CLIP normalisation table");
    const buf = encodeImagePixels(this.ctx, this.clipTable, this.dummy, rgb, width, height, size);
    return new Tensor([3, size, size], new GpuStorage(buf, 0, 3 * size * size, false));
  }

  read(t: Tensor): Promise<Float32Array> {
    const s = this.st(t, "read");
    return this.ctx.read(s.buf, s.offset, s.length);
  }

  checkFinite(t: Tensor, what: string): void {
    const s = this.st(t, "checkFinite");
    const index = this.ctx.checkIndex(what);
    if (s.length > 0) {
      this.ctx.dispatch("finite", [s.length, s.offset, index], 0, [s.buf, this.ctx.statusBuffer], this.ctx.grid(s.length, 256));
    }
  }

  // --- weights -----------------------------------------------------------------------------

  linear(w: LinearWeights): Linear {
    return uploadLinear(this.ctx, w);
  }

  embedding(w: EmbeddingWeights): Embedding {
    checkEmbeddingWeights(w);
    const esize = w.dtype === "f32" ? 4 : 2;
    // Split by row ranges (151936 × 4096 fp16 = 1.16 GiB exceeds most binding limits); 16-bit
    // tables of odd width keep an even number of rows per chunk so that each starts on a word.
    let per = Math.floor((this.ctx.weightChunk - 4) / (w.cols * esize));
    if (per < 1) throw new Error(`embedding: one row of ${w.cols * esize} bytes exceeds the binding limit ${this.ctx.weightChunk}`);
    if (esize === 2 && w.cols % 2 === 1 && per < w.rows) per = Math.max(2, per - (per % 2));
    const chunks = [];
    for (let r0 = 0; r0 < w.rows; r0 += per) {
      const n = Math.min(per, w.rows - r0);
      chunks.push({ r0, n, buffer: this.ctx.weightBuffer(w.data.subarray(r0 * w.cols, (r0 + n) * w.cols), `embedding[${r0}..]`) });
    }
    return new GpuEmbedding(w.rows, w.cols, { f32: 0, f16: 1, bf16: 2 }[w.dtype], chunks);
  }

  // --- copies ------------------------------------------------------------------------------

  gather(table: Embedding, ids: ArrayLike<number>): Tensor {
    if (!(table instanceof GpuEmbedding)) throw new Error("gather: the Embedding was not made by this backend");
    checkGatherIds(ids, table.rows);
    const idx = Uint32Array.from(ids);
    const C = table.cols;
    const out = this.out([ids.length, C], ids.length * C);
    if (ids.length === 0) return out;
    const idBuf = this.ctx.upload(idx);
    for (const c of table.chunks) {
      if (!idx.some((id) => id >= c.r0 && id < c.r0 + c.n)) continue;
      this.ctx.dispatch("gather", [ids.length, C, c.r0, c.n, table.dtype, 0], 0, [c.buffer, idBuf, out.storage.buf],
        this.ctx.grid(ids.length * C, 256));
    }
    this.ctx.give(idBuf);
    return out;
  }

  gatherRows(x: Tensor, rows: readonly number[]): Tensor {
    const s = this.st(x, "gatherRows");
    const C = x.cols, R = x.rows;
    checkRowIndices(rows, R);
    const out = this.out([rows.length, C], rows.length * C);
    // Runs of consecutive rows become one buffer copy each.
    for (let i = 0; i < rows.length; ) {
      let j = i;
      while (j + 1 < rows.length && rows[j + 1] === rows[j] + 1) j++;
      this.ctx.copy(s.buf, (s.offset + rows[i] * C) * 4, out.storage.buf, i * C * 4, (j - i + 1) * C * 4);
      i = j + 1;
    }
    return out;
  }

  sliceColumns(x: Tensor, start: number, width: number): Tensor {
    const s = this.st(x, "sliceColumns");
    const T = x.rows, W = x.cols;
    checkColumnRange(start, width, W);
    if (T === 1) return new Tensor([1, width], new GpuStorage(s.buf, s.offset + start, width, true));
    const out = this.out([T, width], T * width);
    this.ctx.dispatch("copy2d", [T, width, s.offset + start, W, 0, width], 0, [s.buf, out.storage.buf], this.ctx.grid(T * width, 256));
    return out;
  }

  sliceRows(x: Tensor, start: number, n: number): Tensor {
    const s = this.st(x, "sliceRows");
    const row = checkRowRange(x, start, n);
    return new Tensor([n, ...x.shape.slice(1)], new GpuStorage(s.buf, s.offset + start * row, n * row, true));
  }

  patchRows(x: Tensor, P: number): Tensor {
    const s = this.st(x, "patchRows");
    const [C, H, W] = checkPatchRows(x, P);
    const out = this.out([(H / P) * (W / P), C * P * P], x.size);
    this.elementwise("patch_rows", x.size, [C, H, W, P, s.offset, 0], [s.buf, out.storage.buf]);
    return out;
  }

  writeRows(dst: Tensor, start: number, src: Tensor): void {
    const d = this.st(dst, "writeRows"), s = this.st(src, "writeRows");
    const row = checkWriteRows(dst, start, src);
    if (s.buf === d.buf) {
      // WebGPU copies cannot read and write one buffer; the graph never asks for it.
      throw new Error("writeRows: src and dst share storage (a view of the destination)");
    }
    this.ctx.copy(s.buf, s.offset * 4, d.buf, (d.offset + start * row) * 4, s.length * 4);
  }

  // --- math --------------------------------------------------------------------------------

  matmul(x: Tensor, w: Linear): Tensor {
    if (!(w instanceof GpuLinear)) throw new Error("matmul: the Linear was not made by this backend");
    const s = this.st(x, "matmul");
    if (x.cols !== w.inFeatures) throw new Error(`matmul: input has ${x.cols} columns, layer expects ${w.inFeatures}`);
    const M = x.rows;
    const out = this.out([...x.shape.slice(0, -1), w.outFeatures], M * w.outFeatures);
    if (M > 0) encodeMatmul(this.ctx, w, M, s.buf, s.offset, out.storage.buf, 0, this.dummy);
    return out;
  }

  private norm(name: string, x: Tensor, weight: Tensor, bias: Tensor | null, eps: number): Tensor {
    const s = this.st(x, name), ws = this.st(weight, name);
    const D = x.cols, R = x.rows;
    if (weight.size !== D || (bias && bias.size !== D)) {
      throw new Error(`${name}: x [${x.shape}] needs weight${bias ? "/bias" : ""} of ${D} values, got ${weight.size}${bias ? "/" + bias.size : ""}`);
    }
    if (!(eps >= 0)) throw new Error(`${name}: eps must be ≥ 0, got ${eps}`);
    const out = this.out(x.shape, x.size);
    if (R === 0) return out;
    if (bias) {
      const bs = this.st(bias, name);
      this.ctx.dispatch("layer_norm", [R, D, s.offset, ws.offset, bs.offset, 0, eps], 1 << 6 /* eps: f32 */, [s.buf, ws.buf, bs.buf, out.storage.buf], this.ctx.grid(R, 1));
    } else {
      this.ctx.dispatch("rms_norm", [R, D, s.offset, ws.offset, 0, eps], 1 << 5 /* eps: f32 */, [s.buf, ws.buf, out.storage.buf], this.ctx.grid(R, 1));
    }
    return out;
  }

  addRmsNorm(a: Tensor, b: Tensor, weight: Tensor, eps: number, what: string): { sum: Tensor; normed: Tensor } {
    const as = this.st(a, "addRmsNorm"), bs = this.st(b, "addRmsNorm"), ws = this.st(weight, "addRmsNorm");
    const D = a.cols, R = a.rows;
    if (a.size !== b.size) throw new Error(`addRmsNorm: shapes [${a.shape}] and [${b.shape}] differ`);
    if (weight.size !== D) throw new Error(`addRmsNorm: x [${a.shape}] needs weight of ${D} values, got ${weight.size}`);
    if (!(eps >= 0)) throw new Error(`addRmsNorm: eps must be ≥ 0, got ${eps}`);
    const sum = this.out(a.shape, a.size), normed = this.out(a.shape, a.size);
    const index = this.ctx.checkIndex(what);
    if (a.size > 0) {
      this.ctx.dispatch("add_rms_norm", [R, D, as.offset, bs.offset, ws.offset, index, eps], 1 << 6 /* eps: f32 */,
        [as.buf, bs.buf, ws.buf, sum.storage.buf, normed.storage.buf, this.ctx.statusBuffer], this.ctx.grid(R, 1));
    }
    return { sum, normed };
  }

  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
    return this.norm("layer_norm", x, weight, bias, eps);
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    return this.norm("rms_norm", x, weight, null, eps);
  }

  add(a: Tensor, b: Tensor): Tensor {
    const as = this.st(a, "add"), bs = this.st(b, "add");
    const bcast = b.size === a.cols && a.size !== b.size;
    if (!bcast && a.size !== b.size) throw new Error(`add: shapes [${a.shape}] and [${b.shape}] differ`);
    const out = this.out(a.shape, a.size);
    this.elementwise("add", a.size, [a.cols, as.offset, bs.offset, 0, bcast ? 1 : 0], [as.buf, bs.buf, out.storage.buf]);
    return out;
  }

  scaleRows(a: Tensor, s: Tensor): Tensor {
    const as = this.st(a, "scaleRows"), ss = this.st(s, "scaleRows");
    if (s.size !== a.rows) throw new Error(`scaleRows: ${s.size} scales for ${a.rows} rows`);
    const out = this.out(a.shape, a.size);
    this.elementwise("scale_rows", a.size, [a.cols, as.offset, ss.offset, 0], [as.buf, ss.buf, out.storage.buf]);
    return out;
  }

  gelu(x: Tensor): Tensor {
    const s = this.st(x, "gelu");
    const out = this.out(x.shape, x.size);
    this.elementwise("gelu", x.size, [s.offset, 0], [s.buf, out.storage.buf]);
    return out;
  }

  swiglu(a: Tensor, b: Tensor): Tensor {
    const as = this.st(a, "swiglu"), bs = this.st(b, "swiglu");
    if (a.size !== b.size) throw new Error(`swiglu: shapes [${a.shape}] and [${b.shape}] differ`);
    const out = this.out(a.shape, a.size);
    this.elementwise("swiglu", a.size, [as.offset, bs.offset, 0], [as.buf, bs.buf, out.storage.buf]);
    return out;
  }

  swigluMatmul(ab: Tensor, w: Linear): Tensor {
    if (!(w instanceof GpuLinear)) throw new Error("swigluMatmul: the Linear was not made by this backend");
    const s = this.st(ab, "swigluMatmul");
    checkSwigluHalves(ab, w);
    const M = ab.rows;
    if (!gluFusable(w, M)) {
      // Several rows (prefill) go through the GEMMs, which stage x in tiles of rows: the gate
      // is a dispatch of its own there.
      return swigluThenMatmul(this, ab, w);
    }
    const out = this.out([...ab.shape.slice(0, -1), w.outFeatures], M * w.outFeatures);
    encodeMatmul(this.ctx, w, M, s.buf, s.offset, out.storage.buf, 0, this.dummy, true);
    return out;
  }

  ropeWriteKv(qk: Tensor, cos: Tensor, sin: Tensor, v: Tensor, kDst: Tensor, vDst: Tensor, start: number): Tensor {
    const [T, H2, D] = qk.shape;
    const H = H2 / 2;
    if (qk.shape.length !== 3 || H2 % 2 !== 0 || cos.size !== T * D || sin.size !== T * D || D % 2 !== 0) {
      throw new Error(`ropeWriteKv: qk [${qk.shape}] needs [T, 2H, D] (D even) and cos/sin of ${T}×${D}, got ${cos.size}/${sin.size}`);
    }
    if (v.shape.length !== 3 || v.shape[0] !== T || v.shape[1] !== H || v.shape[2] !== D) {
      throw new Error(`ropeWriteKv: v [${v.shape}] does not match qk [${qk.shape}]`);
    }
    const xs = this.st(qk, "ropeWriteKv"), cs = this.st(cos, "ropeWriteKv"), ss = this.st(sin, "ropeWriteKv");
    const vs = this.st(v, "ropeWriteKv"), ks = this.st(kDst, "ropeWriteKv"), ds = this.st(vDst, "ropeWriteKv");
    const kRow = checkWriteRows(kDst, start, v), vRow = checkWriteRows(vDst, start, v);
    const cache = ks.buf;
    if (ds.buf !== cache || [xs.buf, cs.buf, ss.buf, vs.buf].includes(cache)) {
      // One writable cache binding (Dawn rejects two writable bindings of one buffer), and
      // no source inside it: otherwise the separate ops.
      return ropeThenWriteKv(this, qk, cos, sin, v, kDst, vDst, start);
    }
    const out = this.out(qk.shape, qk.size);
    const nqk = qk.size, nv = v.size;
    if (nqk > 0) {
      this.ctx.dispatch("rope_kv", [nqk, nv, H, D, xs.offset, cs.offset, ss.offset, 0, vs.offset, ks.offset + start * kRow, ds.offset + start * vRow], 0,
        [xs.buf, cs.buf, ss.buf, vs.buf, out.storage.buf, cache], this.ctx.grid(nqk + nv, 256));
    }
    return out;
  }

  rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    const [T, H, D] = x.shape;
    if (x.shape.length !== 3 || cos.size !== T * D || sin.size !== T * D || D % 2 !== 0) {
      throw new Error(`rope: x [${x.shape}] needs cos/sin of ${T}×${D} (D even), got ${cos.size}/${sin.size}`);
    }
    const s = this.st(x, "rope"), cs = this.st(cos, "rope"), ss = this.st(sin, "rope");
    const out = this.out(x.shape, x.size);
    this.elementwise("rope", x.size, [H, D, s.offset, cs.offset, ss.offset, 0], [s.buf, cs.buf, ss.buf, out.storage.buf]);
    return out;
  }

  /** Heads per attention pass: the score scratch [Tq, hc, Tk] stays within a budget and the binding limit. */
  private headsPerPass(Tq: number, Tk: number, H: number): number {
    const budget = Math.min(ATTENTION_SCRATCH_BYTES, this.ctx.maxBinding);
    return Math.max(1, Math.min(H, Math.floor(budget / (Tq * Tk * 4))));
  }

  attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
    const [Tq, H, D] = q.shape;
    const Tk = k.shape[0];
    if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3 ||
        k.shape[1] !== H || k.shape[2] !== D || v.shape[0] !== Tk || v.shape[1] !== H || v.shape[2] !== D) {
      throw new Error(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not agree`);
    }
    const pos0 = options.queryOffset ?? 0;
    if (!(Number.isInteger(pos0) && pos0 >= 0)) throw new Error(`attention: queryOffset must be a non-negative integer, got ${pos0}`);
    const qs = this.st(q, "attention"), ks = this.st(k, "attention"), vs = this.st(v, "attention");
    const out = this.out(q.shape, q.size);
    if (Tq === 0 || H === 0 || D === 0) return out;
    if (Tk === 0) {
      this.ctx.clear(out.storage.buf, 0, out.size * 4);
      return out;
    }
    const causal = options.causal ? 1 : 0;
    if (Tq <= ATT_SPLIT_MAX_TQ && D <= ATT_SPLIT_MAX_D) {
      // Few queries (decode): split over the keys, then combine the blocks.
      const rows = Tq * H, nb = Math.ceil(Tk / ATT_SPLIT_KEYS);
      const mlOff = rows * nb * D;
      const part = this.ctx.take((mlOff + 2 * rows * nb) * 4);
      this.ctx.dispatch("att_split", [Tq, Tk, H, D, qs.offset, ks.offset, vs.offset, causal, pos0, nb, mlOff, options.scale], 1 << 11 /* scale: f32 */,
        [qs.buf, ks.buf, vs.buf, part], [nb, rows]);
      this.ctx.dispatch("att_combine", [rows, D, nb, mlOff, 0], 0, [part, out.storage.buf], this.ctx.grid(rows, 1));
      this.ctx.give(part);
      return out;
    }
    if (this.ctx.matrixF16) {
      // Many queries on the matrix units: q·kᵀ and p·v as split-f16 products (mma.ts).
      const hc = this.headsPerPass(Tq, Tk, H);
      const scores = this.ctx.take(Tq * hc * Tk * 4);
      encodeAttention(this.ctx, this.ctx.mmaKernel, { buf: qs.buf, off: qs.offset }, { buf: ks.buf, off: ks.offset }, { buf: vs.buf, off: vs.offset },
        { buf: out.storage.buf, off: 0 }, scores, { Tq, Tk, H, D, hc }, causal, pos0, options.scale, this.dummy);
      this.ctx.give(scores);
      return out;
    }
    if (D <= ATT_FLASH_MAX_D && ATT_FLASH_SHARED_BYTES <= this.ctx.device.limits.maxComputeWorkgroupStorageSize) {
      // Many queries: one pass, scores never leave workgroup memory.
      this.ctx.dispatch("att_flash", [Tq, Tk, H, D, qs.offset, ks.offset, vs.offset, 0, causal, pos0, options.scale], 1 << 10 /* scale: f32 */,
        [qs.buf, ks.buf, vs.buf, out.storage.buf], [Math.ceil(Tq / ATT_FLASH_QUERIES), H]);
      return out;
    }
    const hc = this.headsPerPass(Tq, Tk, H);
    // A power of two of bytes: in decode the scores grow by one key per step, and an exact size
    // would be a new pool size (a new buffer, new bind groups) every other step.
    const need = Tq * hc * Tk * 4;
    const pow2 = 2 ** Math.ceil(Math.log2(need));
    const scratch = this.ctx.take(pow2 <= this.ctx.maxBinding ? pow2 : need);
    for (let h0 = 0; h0 < H; h0 += hc) {
      const n = Math.min(hc, H - h0);
      this.ctx.dispatch("att_scores", [Tq, Tk, H, D, h0, n, qs.offset, ks.offset, causal, pos0, options.scale], 1 << 10 /* scale: f32 */,
        [qs.buf, ks.buf, scratch], this.ctx.grid(Tq * n * Tk, 256));
      this.ctx.dispatch("att_softmax", [Tq * n, Tk, n, causal, pos0], 0, [scratch], this.ctx.grid(Tq * n, 1));
      this.ctx.dispatch("att_pv", [Tq, Tk, H, D, h0, n, vs.offset, 0, causal, pos0], 0, [scratch, vs.buf, out.storage.buf],
        this.ctx.grid(Tq * n * D, 256));
    }
    this.ctx.give(scratch);
    return out;
  }

  // --- lifetime ----------------------------------------------------------------------------

  release(...tensors: Tensor[]): void {
    for (const t of tensors) {
      if (t.storage instanceof GpuStorage && !t.storage.view) this.ctx.give(t.storage.buf);
    }
  }

  dispose(): void {
    this.ctx.destroy();
  }
}
