// Getting a WebGPU device: `navigator.gpu` in browsers, the `webgpu` npm package (Dawn's
// dawn.node) in Node — imported dynamically so that the CPU backends never load it.
/// <reference types="@webgpu/types" />

/** What the backend learned about its adapter (reported in the backend's name, for benchmarks). */
export interface AdapterReport {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly features: readonly string[];
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
}

export interface WebGpuDeviceOptions {
  /** "high-performance" (default) or "low-power", passed to requestAdapter. */
  readonly powerPreference?: GPUPowerPreference;
  /** Dawn toggles to enable (Node only), e.g. "vulkan_enable_f16_on_nvidia". */
  readonly toggles?: readonly string[];
}

export interface AcquiredDevice {
  readonly device: GPUDevice;
  readonly report: AdapterReport;
}

/** Features requested when the adapter has them; the kernels keep a path without each. */
const WANTED_FEATURES = ["shader-f16", "subgroups", "timestamp-query"] as const;

let nodeGpu: GPU | null = null;

async function gpuEntry(toggles: readonly string[]): Promise<GPU> {
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
  nodeGpu = mod.create(flags);
  return nodeGpu;
}

/** An adapter and a device with the adapter's own buffer limits (Dawn's defaults are 256/128 MiB). */
export async function acquireDevice(options: WebGpuDeviceOptions = {}): Promise<AcquiredDevice> {
  const gpu = await gpuEntry(options.toggles ?? []);
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? "high-performance" });
  if (!adapter) {
    throw new Error(
      "webgpu backend: no WebGPU adapter found (Node: Dawn needs a Vulkan driver, e.g. Mesa ≥ 25 lavapipe; see docs/webgpu.md)",
    );
  }
  const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
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
  const info = adapter.info;
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
    },
  };
}

/** The WGSL sources in src/ops/webgpu/wgsl/ (one compute entry point `main` each). */
export const SHADER_NAMES = [
  "add", "scale_rows", "gelu", "swiglu", "rms_norm", "layer_norm", "add_rms_norm", "rope", "rope_kv",
  "att_scores", "att_softmax", "att_pv", "att_split", "att_combine", "att_flash",
  "dense_gemm", "dense_gemm_128", "dense_gemm_128x64", "dense_gemm_128k16", "dense_gemv", "dense_gemv4", "gptq_gemv", "gptq_gemm",
  "gather", "copy2d", "finite",
] as const;
export type ShaderName = (typeof SHADER_NAMES)[number];

/**
 * Shader sources, each prefixed by common.wgsl. Node reads them from the package's
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
  const common = await get("common");
  const out = new Map<string, string>();
  await Promise.all(SHADER_NAMES.map(async (n) => out.set(n, `${common}\n${await get(n)}`)));
  return out;
}
