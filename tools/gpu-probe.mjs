// What the WebGPU adapter under Node (Dawn, npm package `webgpu`) offers, and the ceilings a
// benchmark can quote "achieved vs the card" against: memory read bandwidth of a compute shader,
// device-to-device copy bandwidth, host upload bandwidth, f32 and f16 FMA rates, and the cost of a
// dispatch and of a readback (a decode step pays both hundreds of times / once per token).
//
//   node tools/gpu-probe.mjs [--gib 1] [--json FILE]
//
// Plain JavaScript (not compiled by tsc) so that it runs with nothing but node, dawn.node and the
// `webgpu` package's index.js: it is the first thing run on a new machine. Times come from the
// GPU's timestamp queries when the adapter has them, else from the wall clock around
// onSubmittedWorkDone (which then includes submission overhead).
import { create, globals } from "webgpu";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { gib: { type: "string", default: "1" }, json: { type: "string" } } });
const GIB = Number(values.gib);
if (!(GIB > 0)) throw new Error(`--gib must be a positive number, got ${values.gib}`);
Object.assign(globalThis, globals);

// vulkan_enable_f16_on_nvidia: Dawn keeps shader-f16 off on NVIDIA's Vulkan driver unless asked
// (Toggles.cpp); allow_unsafe_apis exposes the subgroup features on older Dawn; timestamp
// quantization (on by default against timing attacks) would round GPU times to 100 µs.
const gpu = create([
  "enable-dawn-features=vulkan_enable_f16_on_nvidia,allow_unsafe_apis",
  "disable-dawn-features=timestamp_quantization",
]);
const report = {};
const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
if (!adapter) throw new Error("gpu-probe: requestAdapter returned null (no Vulkan driver found?)");
const info = adapter.info ?? {};
report.adapter = { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description };
report.features = [...adapter.features].sort();
const limitNames = [
  "maxBufferSize", "maxStorageBufferBindingSize", "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize", "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupsPerDimension", "minStorageBufferOffsetAlignment", "maxBindGroups",
  "subgroupMinSize", "subgroupMaxSize",
];
report.limits = {};
for (const n of limitNames) if (adapter.limits[n] !== undefined) report.limits[n] = adapter.limits[n];
console.log(JSON.stringify({ adapter: report.adapter, features: report.features, limits: report.limits }, null, 1));

const want = ["shader-f16", "subgroups", "timestamp-query"].filter((f) => adapter.features.has(f));
const requiredLimits = {};
for (const n of ["maxBufferSize", "maxStorageBufferBindingSize", "maxComputeWorkgroupStorageSize", "maxStorageBuffersPerShaderStage", "maxComputeInvocationsPerWorkgroup"]) {
  requiredLimits[n] = adapter.limits[n];
}
const device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits });
device.addEventListener?.("uncapturederror", (e) => console.error("uncaptured:", e.error?.message));
const hasTs = device.features.has("timestamp-query");
const hasF16 = device.features.has("shader-f16");
report.device_features = [...device.features].sort();

const U = GPUBufferUsage;
const querySet = hasTs ? device.createQuerySet({ type: "timestamp", count: 2 }) : null;
const qBuf = hasTs ? device.createBuffer({ size: 16, usage: U.QUERY_RESOLVE | U.COPY_SRC }) : null;
const qRead = hasTs ? device.createBuffer({ size: 16, usage: U.MAP_READ | U.COPY_DST }) : null;

/**
 * Seconds of GPU time of `record(encoder, timestampWrites)`, best of `reps`: from the timestamps
 * when `timed` (record put them on its pass), else wall clock around submit → work done.
 */
async function timeGpu(reps, record, timed = true) {
  const useTs = hasTs && timed;
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const enc = device.createCommandEncoder();
    const t0 = performance.now();
    record(enc, useTs ? { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } : undefined);
    if (useTs) {
      enc.resolveQuerySet(querySet, 0, 2, qBuf, 0);
      enc.copyBufferToBuffer(qBuf, 0, qRead, 0, 16);
    }
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    let s = (performance.now() - t0) / 1000;
    if (useTs) {
      await qRead.mapAsync(GPUMapMode.READ);
      const t = new BigUint64Array(qRead.getMappedRange().slice(0));
      qRead.unmap();
      if (t[1] > t[0]) s = Number(t[1] - t[0]) / 1e9;
    }
    best = Math.min(best, s);
  }
  return best;
}

function pipeline(code) {
  return device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code }), entryPoint: "main" } });
}

// --- read bandwidth: every thread sums vec4<u32> words in a grid-stride loop -----------------
const bytes = Math.min(GIB * 2 ** 30, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
const words4 = Math.floor(bytes / 16);
const big = device.createBuffer({ size: words4 * 16, usage: U.STORAGE | U.COPY_DST | U.COPY_SRC });
const WG = 256;
const GROUPS = 132 * 32; // 132 multiprocessors on the H200 (CUDA device query), 32 groups each
const sink = device.createBuffer({ size: WG * GROUPS * 4, usage: U.STORAGE });
const readP = pipeline(`
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  var acc = vec4<u32>(0u);
  let stride = ${WG * GROUPS}u;
  for (var i = g.x; i < ${words4}u; i += stride) { acc ^= src[i]; }
  dst[g.x] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}`);
const readBg = device.createBindGroup({ layout: readP.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: big } }, { binding: 1, resource: { buffer: sink } }] });
const readS = await timeGpu(5, (enc, tw) => {
  const p = enc.beginComputePass(tw ? { timestampWrites: tw } : {});
  p.setPipeline(readP); p.setBindGroup(0, readBg); p.dispatchWorkgroups(GROUPS); p.end();
});
report.read_bytes = words4 * 16;
report.read_gb_s = (words4 * 16) / readS / 1e9;
console.log(`read: ${(words4 * 16 / 2 ** 30).toFixed(2)} GiB in ${(readS * 1e3).toFixed(3)} ms = ${report.read_gb_s.toFixed(0)} GB/s (${hasTs ? "timestamps" : "wall clock"})`);

// --- device-to-device copy (bytes read + written) ---------------------------------------------
const half = Math.floor(words4 / 2) * 16;
const big2 = device.createBuffer({ size: half, usage: U.COPY_DST });
const COPIES = 16; // in one submit, so that the submit's own cost (tens of µs) is amortised
const copyS = await timeGpu(5, (enc) => { for (let i = 0; i < COPIES; i++) enc.copyBufferToBuffer(big, 0, big2, 0, half); }, false);
big2.destroy();
report.copy_gb_s_read_plus_write = (2 * half * COPIES) / copyS / 1e9;
console.log(`copyBufferToBuffer: ${COPIES} × ${(half / 2 ** 20).toFixed(0)} MiB, ${report.copy_gb_s_read_plus_write.toFixed(0)} GB/s read+write (wall clock incl. submit)`);

// --- host upload (what loading weights pays per byte) -----------------------------------------
{
  const chunk = new Uint8Array(Math.min(64 * 2 ** 20, words4 * 16));
  for (let i = 0; i < chunk.length; i += 4096) chunk[i] = i & 255;
  const n = Math.max(1, Math.floor((words4 * 16) / chunk.length));
  const t0 = performance.now();
  for (let i = 0; i < n; i++) device.queue.writeBuffer(big, i * chunk.length, chunk);
  await device.queue.onSubmittedWorkDone();
  const s = (performance.now() - t0) / 1000;
  report.upload_gb_s = (n * chunk.length) / s / 1e9;
  console.log(`writeBuffer upload: ${(n * chunk.length / 2 ** 30).toFixed(2)} GiB in ${s.toFixed(3)} s = ${report.upload_gb_s.toFixed(2)} GB/s`);
}

// --- FMA peaks: 8 independent vec4 chains per thread, ITER iterations -------------------------
async function fmaPeak(type) {
  const ITER = 4096;
  const enable = type === "f16" ? "enable f16;" : "";
  const p = pipeline(`${enable}
@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let s = ${type}(f32(g.x & 7u) * 1e-3);
  var a0 = vec4<${type}>(s); var a1 = a0 + ${type}(0.1); var a2 = a0 + ${type}(0.2); var a3 = a0 + ${type}(0.3);
  var a4 = a0 + ${type}(0.4); var a5 = a0 + ${type}(0.5); var a6 = a0 + ${type}(0.6); var a7 = a0 + ${type}(0.7);
  let m = vec4<${type}>(${type}(0.999)); let c = vec4<${type}>(${type}(0.001));
  for (var i = 0u; i < ${ITER}u; i++) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  let t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
  dst[g.x] = f32(t.x + t.y + t.z + t.w);
}`);
  const out = device.createBuffer({ size: WG * GROUPS * 4, usage: U.STORAGE });
  const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] });
  const s = await timeGpu(5, (enc, tw) => {
    const pass = enc.beginComputePass(tw ? { timestampWrites: tw } : {});
    pass.setPipeline(p); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(GROUPS); pass.end();
  });
  const flops = 2 * 4 * 8 * ITER * WG * GROUPS;
  return flops / s / 1e12;
}
report.fma_f32_tflops = await fmaPeak("f32");
console.log(`FMA f32: ${report.fma_f32_tflops.toFixed(1)} TFLOP/s`);
if (hasF16) {
  report.fma_f16_tflops = await fmaPeak("f16");
  console.log(`FMA f16 (vec4<f16>): ${report.fma_f16_tflops.toFixed(1)} TFLOP/s`);
}

// --- dispatch and readback overheads (a decode step: ~15 dispatches per layer, one readback) ---
{
  const p = pipeline(`@group(0) @binding(0) var<storage, read_write> d: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { d[g.x] += 1u; }`);
  const b = device.createBuffer({ size: 256 * 4, usage: U.STORAGE | U.COPY_SRC });
  const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: b } }] });
  const N = 2000;
  for (const mode of ["one pass", "pass per dispatch"]) {
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      const enc = device.createCommandEncoder();
      if (mode === "one pass") {
        const pass = enc.beginComputePass();
        pass.setPipeline(p); pass.setBindGroup(0, bg);
        for (let i = 0; i < N; i++) pass.dispatchWorkgroups(4);
        pass.end();
      } else {
        for (let i = 0; i < N; i++) {
          const pass = enc.beginComputePass();
          pass.setPipeline(p); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(4); pass.end();
        }
      }
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    report[`dispatch_us_${mode.replace(/ /g, "_")}`] = (best / N) * 1e6;
    console.log(`dispatch (${mode}, ${N} dependent tiny dispatches, wall): ${((best / N) * 1e6).toFixed(2)} µs each`);
  }
  const rb = device.createBuffer({ size: 151936 * 4, usage: U.MAP_READ | U.COPY_DST }); // one row of logits (vocab 151936)
  const src = device.createBuffer({ size: 151936 * 4, usage: U.STORAGE | U.COPY_SRC });
  const times = [];
  for (let r = 0; r < 20; r++) {
    const t0 = performance.now();
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, rb, 0, 151936 * 4);
    device.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ);
    new Float32Array(rb.getMappedRange()).slice(0);
    rb.unmap();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  report.readback_logits_ms_median = times[times.length >> 1];
  console.log(`readback of one logits row (607 KB) incl. submit+map: median ${report.readback_logits_ms_median.toFixed(3)} ms`);
}

if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2) + "\n");
device.destroy();
// Dawn's worker threads can keep the event loop alive after destroy().
process.exit(0);
