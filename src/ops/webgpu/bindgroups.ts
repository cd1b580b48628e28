// Explicit bind group layouts and a cache of bind groups keyed by the buffers they bind.
//
// Binding 0 of every shader is its parameter slot: a 256-byte range of the one parameter buffer,
// bound with a dynamic offset (the slot's) given at setBindGroup. Bindings 1.. are storage
// buffers bound whole (element offsets travel in the parameters). A bind group is therefore a
// function of (pipeline, storage buffers) alone and is made once: weights never change and pooled
// activation buffers recur step after step. Making one per dispatch was most of the ~28 µs of
// host time per dispatch measured on an H200 (docs/webgpu-h200.md).
//
// Lifetime. A bind group keeps the buffers it binds alive on the device, so entries must not
// outlive their buffers:
// - `forget(buffer)` drops every entry that binds `buffer` (before a buffer is destroyed);
// - a buffer its owner drops without destroying it (the weights of a Linear that goes out of
//   scope) is seen by a FinalizationRegistry, which drops its entries then, so that the device
//   memory can go too;
// - at most MAX_ENTRIES are kept, the oldest made dropped first, so that a working set that keeps
//   changing (prefills of changing lengths, images) cannot grow the cache without bound.
// Buffer ids are never reused, so a dropped buffer's id can never name a new buffer's entry.
/// <reference types="@webgpu/types" />

/**
 * Entries kept at most. A decode step of Qwen-VL-Chat binds ~580 distinct groups and an image
 * ~900 (docs/webgpu-h200.md): this holds several such working sets at once.
 */
export const MAX_ENTRIES = 8192;

/**
 * The layout of `@group(0)` as the WGSL declares it: binding 0 the parameter uniform (dynamic
 * offset), bindings 1..n storage buffers (read-only for `var<storage, read>`).
 */
export function layoutEntries(code: string, name: string, paramBytes: number): GPUBindGroupLayoutEntry[] {
  const decl = /@group\(0\)\s*@binding\((\d+)\)\s*var<\s*(uniform|storage\s*,\s*(read|read_write))\s*>/g;
  const kinds = new Map<number, string>();
  for (const m of code.matchAll(decl)) {
    const n = Number(m[1]);
    if (kinds.has(n)) throw new Error(`webgpu: shader ${name} declares binding ${n} twice`);
    kinds.set(n, m[2] === "uniform" ? "uniform" : m[3]);
  }
  const entries: GPUBindGroupLayoutEntry[] = [];
  for (let n = 0; n < kinds.size; n++) {
    const kind = kinds.get(n);
    if (kind === undefined || (n === 0) !== (kind === "uniform")) {
      throw new Error(`webgpu: shader ${name} must declare binding 0 as its uniform parameters and 1..${kinds.size - 1} as storage buffers`);
    }
    entries.push({
      binding: n,
      visibility: GPUShaderStage.COMPUTE,
      buffer: n === 0
        ? { type: "uniform", hasDynamicOffset: true, minBindingSize: paramBytes }
        : { type: kind === "read" ? "read-only-storage" : "storage" },
    });
  }
  return entries;
}

/** A pipeline as the cache needs it: a unique name and its explicit layout. */
export interface LaidOutPipeline {
  readonly name: string;
  readonly layout: GPUBindGroupLayout;
}

interface Entry {
  readonly group: GPUBindGroup;
  readonly ids: readonly number[];
}

export class BindGroupCache {
  private readonly entries = new Map<string, Entry>();
  /** Buffer id → keys of the entries that bind it. */
  private readonly keysOf = new Map<number, Set<string>>();
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private nextId = 0;
  private readonly collected = new FinalizationRegistry<number>((id) => this.forgetId(id));
  /** Bind groups made, and dispatches that reused one (benchmarks, tests). */
  created = 0;
  reused = 0;

  constructor(
    private readonly device: GPUDevice,
    /** Bound at binding 0 of every group: `paramBytes` from the dispatch's dynamic offset. */
    private readonly params: GPUBuffer,
    private readonly paramBytes: number,
    private readonly maxEntries = MAX_ENTRIES,
  ) {}

  /** Entries held now. */
  get size(): number {
    return this.entries.size;
  }

  private idOf(b: GPUBuffer): number {
    let id = this.ids.get(b);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(b, id);
      this.collected.register(b, id, b);
    }
    return id;
  }

  /** The bind group of `pipe` over `buffers` (bindings 1..), made on first use. */
  get(pipe: LaidOutPipeline, buffers: readonly GPUBuffer[]): GPUBindGroup {
    let key = pipe.name;
    for (let i = 0; i < buffers.length; i++) key += "," + this.idOf(buffers[i]);
    const hit = this.entries.get(key);
    if (hit) {
      this.reused++;
      return hit.group;
    }
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.params, offset: 0, size: this.paramBytes } }];
    for (let i = 0; i < buffers.length; i++) entries.push({ binding: i + 1, resource: { buffer: buffers[i] } });
    const group = this.device.createBindGroup({ layout: pipe.layout, entries, label: pipe.name });
    this.created++;
    if (this.entries.size >= this.maxEntries) this.drop(this.entries.keys().next().value!);
    const ids = buffers.map((b) => this.idOf(b));
    this.entries.set(key, { group, ids });
    for (const id of ids) {
      let keys = this.keysOf.get(id);
      if (!keys) this.keysOf.set(id, (keys = new Set()));
      keys.add(key);
    }
    return group;
  }

  /** Drop every entry that binds `buffer` (call before destroying it). */
  forget(buffer: GPUBuffer): void {
    const id = this.ids.get(buffer);
    if (id === undefined) return;
    this.ids.delete(buffer);
    this.collected.unregister(buffer);
    this.forgetId(id);
  }

  /** Drop everything (the device goes away). */
  clear(): void {
    this.entries.clear();
    this.keysOf.clear();
  }

  private forgetId(id: number): void {
    const keys = this.keysOf.get(id);
    if (!keys) return;
    for (const key of [...keys]) this.drop(key);
    this.keysOf.delete(id);
  }

  private drop(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    for (const id of e.ids) {
      const keys = this.keysOf.get(id);
      keys?.delete(key);
      if (keys?.size === 0) this.keysOf.delete(id);
    }
  }
}
