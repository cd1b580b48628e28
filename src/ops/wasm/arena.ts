// An arena is one shared WebAssembly.Memory (wasm32: at most 4 GiB) holding a group of weights
// plus the scratch space where the activations of an op on those weights are staged.
// Layout (docs/memory.md):
//   [0, 1024)            unused
//   [1024, CONST_END)    vector constants (assembly/consts.ts), written by init_consts
//   [64 KiB, top)        weights, bump-allocated, never freed
//   [top, …)             scratch of the op in progress; reset at the start of every op
import { instantiate, type KernelExports } from "./module.js";

const PAGE = 65536;
/** First weight byte: leaves the constant table alone. */
export const WEIGHT_BASE = 65536;
/** wasm32 limit: 65536 pages of 64 KiB. */
export const MAX_PAGES = 65536;
const ALIGN = 64; // one cache line: every v128 load of a block stays within a line

export const alignUp = (n: number, a = ALIGN): number => Math.ceil(n / a) * a;

export class Arena {
  readonly memory: WebAssembly.Memory;
  /** This arena's kernel instance on the calling (main) thread. */
  readonly k: KernelExports;
  /** End of the weights. */
  top = WEIGHT_BASE;
  private buf: SharedArrayBuffer;

  constructor(
    readonly id: number,
    module: WebAssembly.Module,
    /** Bytes of weights this arena accepts before the next arena is opened. */
    readonly weightCapacity: number,
  ) {
    this.memory = new WebAssembly.Memory({ initial: 2, maximum: MAX_PAGES, shared: true });
    this.k = instantiate(module, this.memory);
    this.k.init_consts();
    this.buf = this.memory.buffer as unknown as SharedArrayBuffer;
  }

  /** Grow the memory so that [0, end) is addressable. */
  ensure(end: number): void {
    if (end > MAX_PAGES * PAGE) {
      throw new Error(`arena ${this.id}: ${end} bytes needed, wasm32 memories stop at 4 GiB`);
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      this.memory.grow(Math.ceil((end - have) / PAGE));
      this.buf = this.memory.buffer as unknown as SharedArrayBuffer;
    }
  }

  /** Whether `bytes` more weight bytes fit under the capacity. */
  fits(bytes: number): boolean {
    return this.top === WEIGHT_BASE || this.top + alignUp(bytes) <= WEIGHT_BASE + this.weightCapacity;
  }

  /** Permanent allocation for weights. */
  allocWeights(bytes: number): number {
    const p = this.top;
    this.top = alignUp(p + bytes);
    this.ensure(this.top);
    return p;
  }

  /** Scratch blocks for one op, laid out after the weights. Valid until the next op. */
  scratch(sizes: readonly number[]): number[] {
    let p = alignUp(this.top);
    const out: number[] = [];
    for (const s of sizes) {
      out.push(p);
      p = alignUp(p + s);
    }
    this.ensure(p);
    return out;
  }

  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.buf, ptr, n);
  }
  u16(ptr: number, n: number): Uint16Array {
    return new Uint16Array(this.buf, ptr, n);
  }
  i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.buf, ptr, n);
  }
}
