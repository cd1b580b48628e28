// Loading the kernel module: two builds of assembly/ (asconfig.json), chosen at run time.
// Relaxed SIMD (fused multiply-add) is used when the engine validates the relaxed build
// (Node 24 and current Chromium do by default); otherwise the plain SIMD128 build. Never requires
// flags. The bytes come from the platform layer (platform.node.ts: build/; browsers: fetched first).
import { readKernelBytes } from "./platform.node.js";

export type SimdFlavour = "relaxed" | "simd128";


export interface KernelModule {
  readonly module: WebAssembly.Module;
  readonly flavour: SimdFlavour;
}

const cache = new Map<string, KernelModule>();

/** Compile (once per process) the requested build; "auto" prefers relaxed when valid. */
export function loadKernels(want: SimdFlavour | "auto" = "auto"): KernelModule {
  const hit = cache.get(want);
  if (hit) return hit;
  let flavour: SimdFlavour = "simd128";
  let bytes: Uint8Array | undefined;
  if (want !== "simd128") {
    const relaxed = readKernelBytes("kernels-relaxed.wasm");
    if (WebAssembly.validate(relaxed)) {
      flavour = "relaxed";
      bytes = relaxed;
    } else if (want === "relaxed") {
      throw new Error("kernels: this engine does not support relaxed SIMD (build/kernels-relaxed.wasm does not validate)");
    }
  }
  if (!bytes) bytes = readKernelBytes("kernels.wasm");
  const k = { module: new WebAssembly.Module(bytes), flavour };
  cache.set(want, k);
  return k;
}

/** The exports every instance has (see assembly/index.ts). All pointers are byte offsets. */
export type KernelExports = Record<string, (...args: number[]) => number>;

export function instantiate(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  return inst.exports as unknown as KernelExports;
}
