// The device side of the WebGPU backend: buffers, the pending command encoder, per-dispatch
// parameters, read-back and the deferred finite checks. The op wrappers (backend.ts, linear.ts)
// only decide shapes, strides and dispatch sizes and call `dispatch`.
//
// Ordering rules this file enforces (why each exists):
// - Dispatches and copies go into one command encoder, submitted when a value is read (`read`)
//   or every SUBMIT_EVERY dispatches (so the GPU starts while the host encodes the rest).
//   Dispatches run in issue order (WebGPU synchronises storage writes between dispatches).
// - `queue.writeBuffer` runs at once on the queue timeline, i.e. BEFORE the pending encoder's
//   commands. A buffer written that way (fromHost, index uploads) must therefore not be referenced
//   by the pending encoder: the pool hands out for uploads only buffers untouched since the last
//   submit (`lastEpoch`). Buffers written by GPU ops may be reused at once (in-order execution).
// - Parameters go into a host-side block of 256-byte slots (minUniformBufferOffsetAlignment) that
//   is written into one uniform buffer just before the submit; a full block forces a submit.
//   The uniform is bound at a dynamic offset (the slot's), so a bind group depends only on the
//   storage buffers it binds and is cached (bindgroups.ts). Earlier submits are queued before
//   the next block is written, so they still read their own parameters.
// - A buffer is destroyed only with the context (the bind group cache goes first); one dropped
//   by its owner leaves the cache through its FinalizationRegistry (bindgroups.ts).
/// <reference types="@webgpu/types" />
import type { TensorStorage } from "../backend.js";
import { BindGroupCache, layoutEntries, type LaidOutPipeline } from "./bindgroups.js";
import type { DenseGemmKernel } from "./linear.js";
import { MMA_KERNELS, type MmaKernel } from "./mma.js";

/** Storage of a WebGPU tensor: `length` f32 values from element `offset` of `buffer`. */
export class GpuStorage implements TensorStorage {
  constructor(
    readonly buf: PooledBuffer,
    /** First value, in f32 elements from the buffer's start. */
    readonly offset: number,
    readonly length: number,
    /** Views (sliceRows, one-row sliceColumns) share another tensor's buffer and are never pooled. */
    readonly view: boolean,
  ) {}
}

/** A device buffer with the bookkeeping the pool and the upload rule need. */
export interface PooledBuffer {
  readonly buffer: GPUBuffer;
  readonly bytes: number;
  /** Creation order: the pool hands out the lowest free one (see `take`). */
  readonly id: number;
  /** The last epoch (submit count) whose encoder referenced this buffer. */
  lastEpoch: number;
  /** Handed back to the pool (guards against a double release). */
  free: boolean;
}

/** One binding of a dispatch: a pooled buffer, a raw buffer (weights), bound whole. */
export type Binding = PooledBuffer | GPUBuffer;

const PARAM_SLOT_BYTES = 256; // WebGPU's default minUniformBufferOffsetAlignment
const PARAM_SLOTS = 4096; // 1 MiB of parameters per submit: a decode step of Qwen-7B uses ~700

// Submit after this many dispatches even before a read, so that the GPU runs the first layers
// of a step while the host still encodes the rest. On an H200 a decode step encoded ~580
// dispatches in 17 ms of host time, all before one submit, then 22 ms of GPU work
// (docs/webgpu-h200.md); 64 is about three and a half decoder layers (~18 dispatches each).
const SUBMIT_EVERY = 64;

const STATUS_NONE = 0xffffffff;

interface Pipeline extends LaidOutPipeline {
  readonly pipeline: GPUComputePipeline;
}

export class GpuContext {
  readonly device: GPUDevice;
  /** Largest size of one storage binding (bytes): the adapter's limit, capped below 2 GiB. */
  readonly maxBinding: number;
  /** Largest weight chunk (bytes): maxBinding, or lower when asked (tests of the splits). */
  readonly weightChunk: number;
  private readonly pipelines = new Map<string, Pipeline>();
  /** Free buffers by size, each list sorted by id from highest to lowest. */
  private readonly pool = new Map<number, PooledBuffer[]>();
  private nextBufferId = 0;
  private readonly stagingPool = new Map<number, GPUBuffer[]>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** The pipeline last set in `pass` (setPipeline is skipped when it repeats). */
  private passPipeline: Pipeline | null = null;
  private epoch = 0;
  private readonly params = new ArrayBuffer(PARAM_SLOT_BYTES * PARAM_SLOTS);
  private readonly paramsU32 = new Uint32Array(this.params);
  private readonly paramsF32 = new Float32Array(this.params);
  private slots = 0;
  private readonly paramBuffer: GPUBuffer;
  private readonly bindGroups: BindGroupCache;
  private readonly maxWorkgroups: number;
  /** The device's maxComputeWorkgroupStorageSize (bytes): which kernels it can run. */
  readonly maxWorkgroupStorage: number;
  /** status[0]: min over failed checks of index·4 + kind (0 NaN, 1 +Inf, 2 −Inf). */
  private readonly status: GPUBuffer;
  private readonly checkLabels = new Map<number, string>();
  private nextCheck = 0;
  private firstError: string | null = null;
  /** Dispatches and copies encoded since the context was made (for benchmarks). */
  dispatches = 0;
  submits = 0;
  /**
   * Host milliseconds in dispatch/copy/clear (encoding) and in flush (parameter write, finish,
   * submit): what the op stream costs the host here, apart from the op wrappers' own JavaScript.
   */
  encodeMs = 0;
  submitMs = 0;

  constructor(
    device: GPUDevice,
    private readonly shaders: ReadonlyMap<string, string>,
    /** Split weights into chunks of at most this many bytes (tests of the splits). */
    weightChunkBytes?: number,
    /** The dense GEMM kernel of every M > 1 dense matmul (tests, benchmarks); default: linear.ts picks. */
    public denseGemm?: DenseGemmKernel,
    /** The device runs the matrix-unit kernels (device.ts's AdapterReport.matrixF16). */
    readonly matrixF16 = false,
    /** Which of them the linears and attention use (AdapterReport.mmaKernel). */
    readonly mmaKernel: MmaKernel = MMA_KERNELS["1sg"],
  ) {
    this.device = device;
    // Bindings over 2 GiB are not supported by Dawn's backends; keep one 256-byte step below.
    this.maxBinding = Math.min(device.limits.maxStorageBufferBindingSize, 2 ** 31 - 256);
    this.weightChunk = Math.min(this.maxBinding, weightChunkBytes ?? Infinity);
    this.paramBuffer = device.createBuffer({
      size: this.params.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.bindGroups = new BindGroupCache(device, this.paramBuffer, PARAM_SLOT_BYTES);
    // Read once: every access of device.limits crosses into the native binding.
    this.maxWorkgroups = device.limits.maxComputeWorkgroupsPerDimension;
    this.maxWorkgroupStorage = device.limits.maxComputeWorkgroupStorageSize;
    this.status = device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(this.status, 0, new Uint32Array([STATUS_NONE, 0, 0, 0]));
    device.addEventListener("uncapturederror", (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.firstError ??= e.message;
    });
  }

  // --- buffers -----------------------------------------------------------------------------

  /**
   * A buffer of at least `bytes` (rounded to 256) for GPU-written outputs (reuse at once is safe).
   * The lowest-id free buffer that qualifies: which buffer an op gets then depends only on which
   * ones are free, not on the order they came back in, so a decode step that frees all it takes
   * gets the same buffers every step, and with them the same cached bind groups. (Handing out
   * the last one returned instead permuted them from step to step: on an H200 a decode step made
   * 170 of its ~360 bind groups anew.)
   */
  take(bytes: number, forUpload = false): PooledBuffer {
    const size = Math.max(256, Math.ceil(bytes / 256) * 256);
    if (size > this.maxBinding) {
      throw new Error(`webgpu: a ${bytes}-byte tensor exceeds this device's storage binding limit of ${this.maxBinding} bytes`);
    }
    const list = this.pool.get(size);
    if (list) {
      for (let i = list.length - 1; i >= 0; i--) {
        const b = list[i];
        if (!forUpload || b.lastEpoch < this.epoch) {
          list.splice(i, 1);
          b.free = false;
          return b;
        }
      }
    }
    const buffer = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    return { buffer, bytes: size, id: this.nextBufferId++, lastEpoch: -1, free: false };
  }

  /** Back to the pool: a later `take` of the same rounded size may return it. */
  give(b: PooledBuffer): void {
    if (b.free) return;
    b.free = true;
    let list = this.pool.get(b.bytes);
    if (!list) this.pool.set(b.bytes, (list = []));
    // Keep the list sorted by id, highest first (the lowest is popped from the end).
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].id > b.id) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, b);
  }

  /** A pooled buffer holding `data` (f32 values or 32-bit words), written before the pending ops run. */
  upload(data: Float32Array | Uint32Array | Int32Array): PooledBuffer {
    const b = this.take(data.byteLength, true);
    if (data.byteLength > 0) this.device.queue.writeBuffer(b.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return b;
  }

  /**
   * A pooled buffer holding `data`'s bytes, 4 per 32-bit word (WGSL has no 8-bit type; byte i in
   * bits 8·(i % 4) of word i / 4, as little-endian memory lays them out), the last word
   * zero-padded; written before the pending ops run, like `upload`.
   */
  uploadBytes(data: Uint8Array): PooledBuffer {
    const b = this.take(data.byteLength, true);
    // writeBuffer wants whole words: the body straight from `data` (no copy here), the tail padded.
    const whole = data.byteLength - (data.byteLength % 4);
    if (whole > 0) this.device.queue.writeBuffer(b.buffer, 0, data, 0, whole);
    if (whole < data.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(data.subarray(whole));
      this.device.queue.writeBuffer(b.buffer, whole, tail);
    }
    return b;
  }

  /** A weight buffer (never pooled) holding `data`; 16-bit data is padded to whole 32-bit words. */
  weightBuffer(data: Float32Array | Uint32Array | Int32Array | Uint16Array, label: string): GPUBuffer {
    let bytes: ArrayBufferView = data;
    if (data.byteLength % 4 !== 0 || data.byteOffset % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      bytes = padded;
    }
    const size = Math.max(4, bytes.byteLength);
    if (size > this.maxBinding) {
      throw new Error(`webgpu: weight ${label} (${size} bytes) exceeds the binding limit of ${this.maxBinding} bytes`);
    }
    const buffer = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label });
    if (bytes.byteLength > 0) this.device.queue.writeBuffer(buffer, 0, bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
    return buffer;
  }

  // --- encoding ----------------------------------------------------------------------------

  private pipeline(name: string): Pipeline {
    let p = this.pipelines.get(name);
    if (!p) {
      const code = this.shaders.get(name);
      if (code === undefined) throw new Error(`webgpu: no shader ${name}`);
      const module = this.device.createShaderModule({ code, label: name });
      // An explicit layout (not "auto"): the parameter uniform needs hasDynamicOffset.
      const layout = this.device.createBindGroupLayout({ entries: layoutEntries(code, name, PARAM_SLOT_BYTES), label: name });
      const pipeline = this.device.createComputePipeline({
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout], label: name }),
        compute: { module, entryPoint: "main" },
        label: name,
      });
      p = { name, layout, pipeline };
      this.pipelines.set(name, p);
    }
    return p;
  }

  private enc(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
    this.passPipeline = null;
  }

  private touch(b: Binding): GPUBuffer {
    if ("buffer" in b && "lastEpoch" in b) {
      b.lastEpoch = this.epoch;
      return b.buffer;
    }
    return b as GPUBuffer;
  }

  /**
   * Encode one dispatch of shader `name`: binding 0 is its parameter block (u32 words, or f32
   * where bit i of `floats` is set for word i), bindings 1.. are `buffers`, each bound whole.
   */
  dispatch(name: string, params: ReadonlyArray<number>, floats: number, buffers: readonly Binding[], groups: readonly [number, number?, number?]): void {
    if (params.length > PARAM_SLOT_BYTES / 4) throw new Error(`webgpu: ${name} has too many parameters`);
    const [x, y = 1, z = 1] = groups;
    const most = Math.max(x, y, z);
    if (most > this.maxWorkgroups) throw new Error(`webgpu: ${name} needs ${most} workgroups in one dimension (limit ${this.maxWorkgroups})`);
    if (this.slots === PARAM_SLOTS || this.slots === SUBMIT_EVERY) this.flush();
    const t0 = performance.now(); // after the flush, which counts as submitMs
    const pipe = this.pipeline(name);
    const slot = this.slots++;
    const base = (slot * PARAM_SLOT_BYTES) / 4;
    for (let i = 0; i < params.length; i++) {
      if ((floats >>> i) & 1) this.paramsF32[base + i] = params[i];
      else this.paramsU32[base + i] = params[i];
    }
    const raw: GPUBuffer[] = [];
    for (const b of buffers) raw.push(this.touch(b));
    const group = this.bindGroups.get(pipe, raw);
    this.pass ??= this.enc().beginComputePass();
    if (this.passPipeline !== pipe) {
      this.pass.setPipeline(pipe.pipeline);
      this.passPipeline = pipe;
    }
    this.pass.setBindGroup(0, group, [slot * PARAM_SLOT_BYTES]);
    this.pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
    this.encodeMs += performance.now() - t0;
  }

  /** Bind groups made and reused so far, and how many the cache holds (benchmarks, tests). */
  get bindGroupCounts(): { created: number; reused: number; cached: number } {
    return { created: this.bindGroups.created, reused: this.bindGroups.reused, cached: this.bindGroups.size };
  }

  /** Workgroup counts covering `n` invocations of `wg` threads: [x, y] with x within the limit. */
  grid(n: number, wg: number): [number, number] {
    const groups = Math.ceil(n / wg);
    const maxX = this.maxWorkgroups;
    if (groups <= maxX) return [Math.max(1, groups), 1];
    return [maxX, Math.ceil(groups / maxX)];
  }

  copy(src: PooledBuffer, srcByte: number, dst: PooledBuffer, dstByte: number, bytes: number): void {
    if (bytes === 0) return;
    const t0 = performance.now();
    this.endPass();
    this.enc().copyBufferToBuffer(this.touch(src), srcByte, this.touch(dst), dstByte, bytes);
    this.dispatches++;
    this.encodeMs += performance.now() - t0;
  }

  clear(dst: PooledBuffer, byte: number, bytes: number): void {
    if (bytes === 0) return;
    const t0 = performance.now();
    this.endPass();
    this.enc().clearBuffer(this.touch(dst), byte, bytes);
    this.encodeMs += performance.now() - t0;
  }

  // --- finite checks -----------------------------------------------------------------------

  /** A new check index for `what` (recorded until a read shows that it passed). */
  checkIndex(what: string): number {
    const i = this.nextCheck++;
    // index·4 + kind must fit in a u32 below STATUS_NONE.
    if (i >= 2 ** 30 - 1) throw new Error("webgpu: too many finite checks");
    this.checkLabels.set(i, what);
    return i;
  }

  get statusBuffer(): GPUBuffer {
    return this.status;
  }

  // --- submit and read ---------------------------------------------------------------------

  /** Submit everything encoded so far (parameters first). */
  flush(): void {
    const t0 = performance.now();
    this.endPass();
    if (this.slots > 0) this.device.queue.writeBuffer(this.paramBuffer, 0, this.params, 0, this.slots * PARAM_SLOT_BYTES);
    this.slots = 0;
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.submits++;
    }
    this.encoder = null;
    this.epoch++;
    this.submitMs += performance.now() - t0;
  }

  private staging(bytes: number): GPUBuffer {
    const list = this.stagingPool.get(bytes);
    return list?.pop() ?? this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  /**
   * The values of `length` f32s at element `offset` of `b`, as of this point of the op stream;
   * throws the first failed finite check (or device error) recorded up to here.
   */
  async read(b: PooledBuffer, offset: number, length: number): Promise<Float32Array> {
    const bytes = Math.max(16, Math.ceil((length * 4) / 16) * 16);
    const total = bytes + 16;
    const stage = this.staging(total);
    this.endPass();
    if (length > 0) this.enc().copyBufferToBuffer(this.touch(b), offset * 4, stage, 0, length * 4);
    this.enc().copyBufferToBuffer(this.status, 0, stage, bytes, 16);
    const checksUpTo = this.nextCheck;
    this.flush();
    await stage.mapAsync(GPUMapMode.READ);
    const mapped = stage.getMappedRange();
    const out = new Float32Array(mapped.slice(0, length * 4));
    const status = new Uint32Array(mapped.slice(bytes, bytes + 4))[0];
    stage.unmap();
    let list = this.stagingPool.get(total);
    if (!list) this.stagingPool.set(total, (list = []));
    list.push(stage);
    if (this.firstError !== null) {
      const e = this.firstError;
      this.firstError = null;
      throw new Error(`webgpu: device error: ${e}`);
    }
    if (status !== STATUS_NONE) {
      const index = status >>> 2;
      const kind = ["NaN", "Inf", "-Inf"][status & 3];
      const what = this.checkLabels.get(index) ?? `finite check #${index}`;
      // Forget it so the next read starts clean.
      this.device.queue.writeBuffer(this.status, 0, new Uint32Array([STATUS_NONE]));
      for (const k of [...this.checkLabels.keys()]) if (k < checksUpTo) this.checkLabels.delete(k);
      throw new Error(`${what} contains ${kind}`);
    }
    for (const k of [...this.checkLabels.keys()]) if (k < checksUpTo) this.checkLabels.delete(k);
    return out;
  }

  destroy(): void {
    this.endPass();
    this.encoder = null;
    this.bindGroups.clear();
    for (const list of this.pool.values()) for (const b of list) b.buffer.destroy();
    for (const list of this.stagingPool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.stagingPool.clear();
    this.paramBuffer.destroy();
    this.status.destroy();
    this.device.destroy();
  }
}
