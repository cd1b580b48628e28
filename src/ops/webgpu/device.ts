// Getting a WebGPU device: `navigator.gpu` in browsers, the `webgpu` npm package (Dawn's
// dawn.node) in Node — imported dynamically so that the CPU backends never load it.
/// <reference types="@webgpu/types" />
import { MMA_KERNELS, MMA_VARIANTS, mmaKernelNamed, type MmaVariant } from "./mma.js";

/** What the backend learned about its adapter (reported in the backend's name, for benchmarks). */
export interface AdapterReport {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly features: readonly string[];
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  /**
   * The f16 × f16 → f32 16 × 16 × 16 subgroup matrix configuration that the matrix-unit kernels
   * (mma.ts) need is offered and enabled, with subgroups of exactly 32 invocations.
   */
  readonly matrixF16: boolean;
  /**
   * The matrix-unit kernel variant the backend uses (MMA_KERNELS): the one asked for, or "1sg"
   * where the device's workgroup memory is too small for it (`mmaNote` says so).
   */
  readonly mmaKernel: MmaVariant;
  readonly mmaNote?: string;
  /** The adapter's subgroup matrix configurations, "f16→f32 16×16×16" (benchmarks record them). */
  readonly matrixConfigs: readonly string[];
}

export interface WebGpuDeviceOptions {
  /** "high-performance" (default) or "low-power", passed to requestAdapter. */
  readonly powerPreference?: GPUPowerPreference;
  /**
   * Dawn toggles to enable (Node only; default NODE_TOGGLES when `matrixUnits` is on, else none),
   * e.g. "vulkan_enable_f16_on_nvidia".
   */
  readonly toggles?: readonly string[];
  /**
   * Dawn toggles to disable (Node only), e.g. "timestamp_quantization" for benchmarks that time
   * dispatches. Like `toggles`, they apply to the first device a process acquires.
   */
  readonly disabledToggles?: readonly string[];
  /**
   * Use the matrix units (subgroup matrices, tensor cores on NVIDIA) for the dense GEMMs where the
   * adapter offers them (default true). Off: the f32 FMA kernels everywhere.
   */
  readonly matrixUnits?: boolean;
  /**
   * The matrix-unit GEMM (mma.ts's MMA_KERNELS; default "8sg"): "8sg" dense_gemm_mma8.wgsl, eight
   * subgroups per 128 × 128 tile staging operands through 44 KiB of workgroup memory (falls back
   * to "1sg", reported, on a device that offers less memory or fewer than 256 invocations per
   * workgroup); "1sg" dense_gemm_mma.wgsl, one subgroup per workgroup. On an H200 8sg took the
   * ViT's block products per image from 211 to 92 ms (docs/webgpu-h200.md).
   */
  readonly mmaKernel?: MmaVariant;
}

export interface AcquiredDevice {
  readonly device: GPUDevice;
  readonly report: AdapterReport;
}

/** Features requested when the adapter has them; the kernels keep a path without each. */
const WANTED_FEATURES = ["shader-f16", "subgroups", "timestamp-query"] as const;
/** Dawn's feature name for subgroup matrices (experimental: offered only with allow_unsafe_apis). */
const MATRIX_FEATURE = "chromium-experimental-subgroup-matrix";
/**
 * Dawn toggles of Node's GPU instance when the matrix units are wanted: Dawn exposes shader-f16
 * on NVIDIA's Vulkan driver only with vulkan_enable_f16_on_nvidia, and its experimental features
 * (subgroup matrices among them) only with allow_unsafe_apis. Neither turns off validation or
 * robust buffer access (docs/webgpu.md).
 */
export const NODE_TOGGLES = ["vulkan_enable_f16_on_nvidia", "allow_unsafe_apis"] as const;

interface MatrixConfig { componentType: string; resultComponentType: string; M: number; N: number; K: number }

let nodeGpu: GPU | null = null;

async function gpuEntry(toggles: readonly string[], disabled: readonly string[]): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (nodeGpu) return nodeGpu;
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = (await import("webgpu" as string)) as typeof mod;
  } catch (e) {
    throw new Error(`webgpu backend: the npm package "webgpu" (Dawn for Node) could not be loaded: ${(e as Error).message}`);
  }
  // dawn.node exposes GPUBufferUsage, GPUMapMode, … as globals only through `globals`.
  Object.assign(globalThis, mod.globals);
  const flags = toggles.length > 0 ? [`enable-dawn-features=${toggles.join(",")}`] : [];
  if (disabled.length > 0) flags.push(`disable-dawn-features=${disabled.join(",")}`);
  nodeGpu = mod.create(flags);
  return nodeGpu;
}

/** An adapter and a device with the adapter's own buffer limits (Dawn's defaults are 256/128 MiB). */
export async function acquireDevice(options: WebGpuDeviceOptions = {}): Promise<AcquiredDevice> {
  if (options.mmaKernel !== undefined && !MMA_VARIANTS.includes(options.mmaKernel)) {
    throw new Error(`webgpu backend: mmaKernel must be one of ${MMA_VARIANTS.join(", ")}, got ${JSON.stringify(options.mmaKernel)}`);
  }
  const wantMatrix = options.matrixUnits ?? true;
  const gpu = await gpuEntry(options.toggles ?? (wantMatrix ? NODE_TOGGLES : []), options.disabledToggles ?? []);
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? "high-performance" });
  if (!adapter) {
    throw new Error(
      "webgpu backend: no WebGPU adapter found (Node: Dawn needs a Vulkan driver, e.g. Mesa ≥ 25 lavapipe; see docs/webgpu.md)",
    );
  }
  const features: string[] = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  const info = adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: readonly MatrixConfig[]; subgroupMinSize?: number; subgroupMaxSize?: number };
  const configs = [...(info.subgroupMatrixConfigs ?? [])];
  const matrixConfigs = configs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`);
  const matrixF16 = wantMatrix && adapter.features.has(MATRIX_FEATURE as GPUFeatureName) && features.includes("shader-f16")
    && features.includes("subgroups") && info.subgroupMinSize === 32 && info.subgroupMaxSize === 32
    && configs.some((c) => c.componentType === "f16" && c.resultComponentType === "f32" && c.M === 16 && c.N === 16 && c.K === 16);
  if (matrixF16) features.push(MATRIX_FEATURE);
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: features as GPUFeatureName[],
    requiredLimits: {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
  // The adapter's workgroup memory limit was requested above; a variant needing more falls back.
  let mmaKernel = options.mmaKernel ?? "8sg";
  let mmaNote: string | undefined;
  const wanted = MMA_KERNELS[mmaKernel];
  const dl = device.limits;
  if (matrixF16 && wanted.sharedBytes > dl.maxComputeWorkgroupStorageSize) {
    mmaNote = `${wanted.name} needs ${wanted.sharedBytes} bytes of workgroup memory, the device offers ${dl.maxComputeWorkgroupStorageSize}: using ${MMA_KERNELS["1sg"].name}`;
    mmaKernel = "1sg";
  } else if (matrixF16 && wanted.workgroupSize > Math.min(dl.maxComputeInvocationsPerWorkgroup, dl.maxComputeWorkgroupSizeX)) {
    mmaNote = `${wanted.name} needs ${wanted.workgroupSize} invocations per workgroup, the device offers ${Math.min(dl.maxComputeInvocationsPerWorkgroup, dl.maxComputeWorkgroupSizeX)}: using ${MMA_KERNELS["1sg"].name}`;
    mmaKernel = "1sg";
  }
  return {
    device,
    report: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      features,
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxBufferSize: device.limits.maxBufferSize,
      matrixF16,
      mmaKernel,
      ...(mmaNote ? { mmaNote } : {}),
      matrixConfigs,
    },
  };
}

/** The WGSL sources in src/ops/webgpu/wgsl/ (one compute entry point `main` each). */
export const SHADER_NAMES = [
  "add", "scale_rows", "gelu", "swiglu", "rms_norm", "layer_norm", "add_rms_norm", "rope", "rope_kv",
  "att_scores", "att_softmax", "att_pv", "att_split", "att_combine", "att_flash",
  "dense_gemm", "dense_gemm_128", "split_f16", "dense_gemm_mma", "dense_gemm_mma8", "dense_gemv", "dense_gemv4", "gptq_gemv", "gptq_gemm",
  "gather", "copy2d", "finite", "resize_bicubic", "patch_rows",
] as const;
export type ShaderName = (typeof SHADER_NAMES)[number];

/** common.wgsl before a shader, the shader's `enable` and `diagnostic` directives before both (WGSL wants them first). */
export function withCommon(common: string, code: string): string {
  const directive = /^(enable [^;]+;|diagnostic\([^)]*\);)[^\n]*\n/gm;
  const enables = code.match(directive) ?? [];
  return `${enables.join("")}${common}\n${code.replace(directive, "")}`;
}

/**
 * Shader sources, each prefixed by common.wgsl (the matrix-unit GEMMs also by mma_common.wgsl). Node reads them from the package's
 * src/ops/webgpu/wgsl/ (found like every other package file, from src/ or dist/src/); a browser
 * fetches them relative to this module (or `baseUrl`).
 */
export async function loadShaders(baseUrl?: string | URL): Promise<Map<string, string>> {
  const isNode = typeof process !== "undefined" && !!process.versions?.node && baseUrl === undefined;
  const underDist = /\/dist\/src\/ops\/webgpu\/[^/]*$/.test(import.meta.url);
  const base = baseUrl ?? new URL(underDist ? "../../../../src/ops/webgpu/wgsl/" : "./wgsl/", import.meta.url);
  const get = async (name: string): Promise<string> => {
    if (isNode) {
      // Dynamic: a browser bundle of this module must not pull in node:fs.
      const [{ readFile }, { packageFile }] = await Promise.all([import("node:fs/promises"), import("../../package-files.js")]);
      return readFile(packageFile(`src/ops/webgpu/wgsl/${name}.wgsl`), "utf8");
    }
    const r = await fetch(new URL(`${name}.wgsl`, base));
    if (!r.ok) throw new Error(`webgpu backend: fetching shader ${name}.wgsl failed: HTTP ${r.status}`);
    return r.text();
  };
  const [common, mmaCommon] = await Promise.all([get("common"), get("mma_common")]);
  const out = new Map<string, string>();
  await Promise.all(SHADER_NAMES.map(async (n) => {
    // mma_common.wgsl (parameters, shared bindings, output step) goes after common.wgsl in front
    // of the matrix-unit GEMMs, the shaders of mma.ts's MMA_KERNELS.
    const shared = mmaKernelNamed(n) ? `${common}\n${mmaCommon}` : common;
    out.set(n, withCommon(shared, await get(n)));
  }));
  return out;
}
