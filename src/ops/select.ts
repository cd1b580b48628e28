// Choosing a backend by name: the CLI, the demo and the conformance runner all go through here.
import type { Backend } from "./backend.js";
import { MMA_VARIANTS, type MmaVariant } from "./webgpu/mma.js";
import { ReferenceBackend } from "../../reference/backend.js";
import { WasmBackend, type DecodeQ4, type PrefillQ4 } from "./wasm/backend.js";
import { hardwareConcurrency, prepareKernelPlatform } from "./wasm/platform.node.js";

/**
 * Backend names, the default first. "auto": webgpu when an adapter exists, else wasm. The CLI's
 * --backend and the browser page's `backend` parameter pass the name through.
 */
export const BACKEND_NAMES = ["wasm", "wasm-fast", "reference", "webgpu", "auto"] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendChoice {
  readonly name: string;
  /** Worker threads for the WASM backend (default: available cores; navigator.hardwareConcurrency in a browser). */
  readonly threads?: number;
  /** Where "auto" says which backend it fell back to (default: console.error). */
  readonly log?: (line: string) => void;
  /**
   * GPTQ kernels of the WASM backend (WasmBackendOptions.decodeQ4 / prefillQ4; default "auto", the
   * timed probe). A page has no environment variables, so this is how it pins them.
   */
  readonly decodeQ4?: DecodeQ4 | "auto";
  readonly prefillQ4?: PrefillQ4 | "auto";
  /**
   * WebGPU: use the matrix units where the adapter offers them (default; WebGpuBackendOptions.matrixUnits).
   * In Node the environment variable QWENVL_GPU_MATRIX=off turns them off too.
   */
  readonly matrixUnits?: boolean;
  /**
   * WebGPU: the matrix-unit GEMM variant (WebGpuBackendOptions.mmaKernel: "8sg", the default, or
   * "1sg"). In Node the environment variable QWENVL_GPU_MMA_KERNEL=1sg|8sg sets it too.
   */
  readonly mmaKernel?: MmaVariant;
  /** WebGPU in Node: Dawn toggles to disable (benchmarks: "timestamp_quantization"). */
  readonly disabledToggles?: readonly string[];
}

async function createWebGpu(choice: BackendChoice): Promise<Backend> {
  // Dynamic import: the CPU paths never load the WebGPU code nor the `webgpu` package.
  const { WebGpuBackend } = await import("./webgpu/backend.js");
  const env = typeof process !== "undefined" ? process.env?.QWENVL_GPU_MATRIX : undefined;
  if (env !== undefined && env !== "on" && env !== "off") throw new Error(`QWENVL_GPU_MATRIX must be "on" or "off", got ${JSON.stringify(env)}`);
  const kernelEnv = typeof process !== "undefined" ? process.env?.QWENVL_GPU_MMA_KERNEL : undefined;
  if (kernelEnv !== undefined && !(MMA_VARIANTS as readonly string[]).includes(kernelEnv)) {
    throw new Error(`QWENVL_GPU_MMA_KERNEL must be one of ${MMA_VARIANTS.map((v) => `"${v}"`).join(", ")}, got ${JSON.stringify(kernelEnv)}`);
  }
  const mmaKernel = choice.mmaKernel ?? (kernelEnv as MmaVariant | undefined);
  return WebGpuBackend.create({
    matrixUnits: choice.matrixUnits ?? env !== "off",
    ...(mmaKernel !== undefined ? { mmaKernel } : {}),
    ...(choice.disabledToggles !== undefined ? { disabledToggles: choice.disabledToggles } : {}),
  });
}

/**
 * A browser fetches the kernel builds and starts the workers here, before the pool's synchronous
 * constructor needs them (platform.browser.ts); Node has nothing to prepare.
 */
async function createWasm(choice: BackendChoice): Promise<Backend> {
  const threads = choice.threads ?? hardwareConcurrency();
  await prepareKernelPlatform(threads - 1);
  // wasm-fast: int4 × int16 integer dot products for GPTQ layers (docs/kernels.md).
  return new WasmBackend({
    threads, precision: choice.name === "wasm-fast" ? "fast" : "f32",
    ...(choice.decodeQ4 !== undefined ? { decodeQ4: choice.decodeQ4 } : {}),
    ...(choice.prefillQ4 !== undefined ? { prefillQ4: choice.prefillQ4 } : {}),
  });
}

export async function createBackend(choice: BackendChoice): Promise<Backend> {
  if (choice.threads !== undefined && !(Number.isInteger(choice.threads) && choice.threads >= 1)) {
    throw new Error(`threads must be a positive integer, got ${choice.threads}`);
  }
  switch (choice.name) {
    case "reference":
      return new ReferenceBackend();
    case "wasm":
    case "wasm-fast":
      return createWasm(choice);
    case "webgpu":
      return createWebGpu(choice);
    case "auto":
      try {
        return await createWebGpu(choice);
      } catch (e) {
        (choice.log ?? console.error)(`webgpu unavailable (${(e as Error).message}); using the wasm backend`);
        return createWasm({ ...choice, name: "wasm" });
      }
    default:
      throw new Error(`unknown backend ${JSON.stringify(choice.name)}; choose one of: ${BACKEND_NAMES.join(", ")}`);
  }
}

/** Release worker threads and memories, for backends that hold them. */
export async function disposeBackend(b: Backend): Promise<void> {
  const d = (b as { dispose?: () => unknown }).dispose;
  if (d) await d.call(b);
}
