// Long-lived buffers in WebAssembly memory that ops read in place: the KV cache, through
// Backend.zeros(…, { longLived: true }) (src/model/qwen.ts). They live in arenas of their own ("storage arenas",
// docs/memory.md), never among the weights, so that a cache that grows or is disposed can hand its
// blocks back: a first-fit free list per arena over [WEIGHT_BASE, top), neighbours coalesced, the
// top lowered when the last block goes. Op scratch sits above top, as in every arena.
import { alignUp, type Arena } from "./arena.js";

interface Block {
  ptr: number;
  bytes: number;
}

export class StorageArenas {
  private readonly arenas: Arena[] = [];
  /** Free blocks per arena, sorted by address. */
  private readonly freeBlocks = new Map<Arena, Block[]>();
  /** Live blocks per arena: address → bytes (catches foreign and double frees). */
  private readonly live = new Map<Arena, Map<number, number>>();
  /** Every SharedArrayBuffer a view was made on (memory.grow() makes a new one) → its arena. */
  private readonly homes = new WeakMap<ArrayBufferLike, Arena>();

  constructor(
    /** Opens a new arena (and makes it known to the thread pool). */
    private readonly open: () => Arena,
    /** Bytes one arena holds before the next is opened. */
    private readonly capacity: number,
  ) {}

  /** n zero-filled floats in an arena. */
  alloc(n: number): Float32Array {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`zeros (long-lived): ${n} is not a positive whole number of floats`);
    const bytes = alignUp(n * 4);
    if (bytes > this.capacity) {
      throw new Error(`zeros (long-lived): ${n} floats (${bytes} bytes) exceed one arena (${this.capacity} bytes)`);
    }
    for (const a of this.arenas) {
      const p = this.take(a, bytes);
      if (p >= 0) return this.view(a, p, n, bytes);
    }
    const a = this.open();
    this.arenas.push(a);
    this.freeBlocks.set(a, []);
    this.live.set(a, new Map());
    return this.view(a, this.take(a, bytes), n, bytes);
  }

  /** Give back a buffer from alloc() (the whole buffer, not a subarray of it). */
  free(v: Float32Array): void {
    const a = this.homes.get(v.buffer);
    const bytes = a ? this.live.get(a)!.get(v.byteOffset) : undefined;
    if (!a || bytes === undefined || alignUp(v.byteLength) !== bytes) {
      throw new Error("release (long-lived): not a live long-lived buffer from zeros() (freed twice, or a subarray)");
    }
    this.live.get(a)!.delete(v.byteOffset);
    const list = this.freeBlocks.get(a)!;
    let i = 0;
    while (i < list.length && list[i].ptr < v.byteOffset) i++;
    list.splice(i, 0, { ptr: v.byteOffset, bytes });
    // Coalesce with the next block, then with the previous one.
    if (i + 1 < list.length && list[i].ptr + list[i].bytes === list[i + 1].ptr) {
      list[i].bytes += list[i + 1].bytes;
      list.splice(i + 1, 1);
    }
    if (i > 0 && list[i - 1].ptr + list[i - 1].bytes === list[i].ptr) {
      list[i - 1].bytes += list[i].bytes;
      list.splice(i, 1);
      i--;
    }
    // The block at the top goes back to the arena (its scratch moves down).
    const last = list[list.length - 1];
    if (last && last.ptr + last.bytes === a.top) {
      a.top = last.ptr;
      list.pop();
    }
  }

  /** The storage arena `data` is a view into, if any. */
  /** Whether v is a whole live block from alloc() (what free() accepts). */
  isBlock(v: Float32Array): boolean {
    const a = this.homes.get(v.buffer);
    const bytes = a ? this.live.get(a)!.get(v.byteOffset) : undefined;
    return bytes !== undefined && alignUp(v.byteLength) === bytes;
  }

  home(data: Float32Array): Arena | undefined {
    return this.homes.get(data.buffer);
  }

  /** Bytes held by live buffers (tests). */
  get liveBytes(): number {
    let s = 0;
    for (const m of this.live.values()) for (const b of m.values()) s += b;
    return s;
  }

  /** First fit from the free list, else from the arena's top; −1 if the arena is full. */
  private take(a: Arena, bytes: number): number {
    const list = this.freeBlocks.get(a)!;
    for (let i = 0; i < list.length; i++) {
      const b = list[i];
      if (b.bytes < bytes) continue;
      const p = b.ptr;
      if (b.bytes === bytes) list.splice(i, 1);
      else {
        b.ptr += bytes;
        b.bytes -= bytes;
      }
      return p;
    }
    return a.fits(bytes) ? a.allocWeights(bytes) : -1;
  }

  private view(a: Arena, p: number, n: number, bytes: number): Float32Array {
    const v = a.f32(p, n);
    v.fill(0);
    this.homes.set(v.buffer, a);
    this.live.get(a)!.set(p, bytes);
    return v;
  }
}
