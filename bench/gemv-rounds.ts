// The GPTQ decode GEMV of one kernel against its limit, in interleaved rounds: each round measures
// the register-only dot_i16 peak and a streaming read (assembly/peak.ts), then the kernel, and
// reports achieved / min(read, compute ceiling) of that round — the `gemv_q4_pct_of_limit_*` rows
// of bench/bench.ts without the rest of the benchmark (seconds instead of minutes, so that runs of
// two builds can alternate on a noisy machine).
//   node dist/bench/gemv-rounds.js [--kernel i8x3|i16x2|fast] [--threads N] [--rounds R] [--cold]
// --cold: a 256 MiB read between the kernel's calls evicts its 23 MB of weights from the caches
// (the model's situation: 32 layers of GEMVs do not fit in L3), and each call is timed alone.
import { Tensor, type GptqWeights } from "../src/ops/backend.js";
import { WasmBackend } from "../src/ops/wasm/backend.js";
import { f32ToF16 } from "../src/io/fp16.js";
import { median, timeMedian } from "./stats.js";
import { PEAK_OPS } from "./bench.js";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const KERNEL = opt("--kernel", "i16x2");
const THREADS = Number(opt("--threads", "2"));
const ROUNDS = Number(opt("--rounds", "7"));
const COLD = argv.includes("--cold");
if (KERNEL !== "i8x3" && KERNEL !== "i16x2" && KERNEL !== "fast") throw new Error(`--kernel must be i8x3, i16x2 or fast, not ${KERNEL}`);
if (!(THREADS >= 1) || !(ROUNDS >= 1)) throw new Error("--threads and --rounds must be positive integers");

let seed = 42;
const rnd = (): number => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};

/** Random GPTQ weights of Qwen-VL's mlp.w1 shape class (values do not change the kernels' speed). */
function gptq(K: number, N: number, gs: number): GptqWeights {
  const G = K / gs;
  return {
    kind: "gptq", inFeatures: K, outFeatures: N, bits: 4, groupSize: gs,
    qweight: Int32Array.from({ length: (K / 8) * N }, () => (rnd() * 2 ** 32) | 0),
    qzeros: new Int32Array(G * (N / 8)).fill(0x77777777),
    scales: Uint16Array.from({ length: G * N }, () => f32ToF16(0.002 + rnd() * 0.01)),
    gIdx: Int32Array.from({ length: K }, (_, i) => Math.floor(i / gs)),
    bias: Float32Array.from({ length: N }, () => rnd() * 2 - 1),
  };
}

const time = timeMedian;

const b = KERNEL === "fast" ? new WasmBackend({ threads: THREADS, precision: "fast" }) : new WasmBackend({ threads: THREADS, decodeQ4: KERNEL });
const [K, N] = [4096, 11008];
const w = gptq(K, N, 128);
const bytes = w.qweight.byteLength + w.scales.byteLength + w.qzeros.byteLength; // checkpoint bytes
const lin = b.linear(w);
const x = new Tensor([1, K], Float32Array.from({ length: K }, () => rnd() * 2 - 1));
// i16x2 executes 2 int16 products per weight (half the dot_i16 peak), "fast" one, i8x3 three
// int8 products (a third of the dot_i8 peak; bench.ts).
const perWeight = KERNEL === "fast" ? 1 : KERNEL === "i16x2" ? 2 : 3;
const peakKernel = KERNEL === "i8x3" ? "peak_dot_i8_t" : "peak_dot_i16_t";
const out = b.scratch(64);
const it = 2e6;
const readBytes = COLD ? 2 ** 28 : 2 ** 27; // 128 MiB (256 with --cold), filled first (untouched pages would read as the zero page)
const per = readBytes / THREADS;
const buf = b.scratch(readBytes + 64);
new Uint8Array(buf.f32(readBytes / 4).buffer, buf.ptr, readBytes).fill(7);

const rows: Record<"dot" | "read" | "limit" | "gbps" | "pct", number[]> = { dot: [], read: [], limit: [], gbps: [], pct: [] };
for (let r = 0; r < ROUNDS; r++) {
  const dot = (THREADS * it * PEAK_OPS[peakKernel]) / time(() => b.runKernel(peakKernel, [it, 3, 5, out.ptr], THREADS), 5) / 1e9;
  const read = readBytes / time(() => b.runKernel("stream_read_t", [buf.ptr, per, out.ptr], THREADS), 5) / 1e9;
  // Staged after the probes (they use the same arena scratch); untimed calls first: the first
  // calls after the read run slow (bench.ts).
  const run = b.matmulKernel(x, lin);
  for (let j = 0; j < 20; j++) run();
  let gbps: number;
  if (COLD) {
    const ts: number[] = [];
    for (let j = 0; j < 9; j++) {
      b.runKernel("stream_read_t", [buf.ptr, per, out.ptr], THREADS);
      const t0 = performance.now();
      run();
      ts.push((performance.now() - t0) / 1000);
    }
    gbps = bytes / median(ts) / 1e9;
  } else gbps = bytes / time(run, 15) / 1e9;
  // Compute ceiling in GB/s: dot ops/s ÷ (2 ops per product · products per weight) weights/s.
  const limit = Math.min(read, ((dot * 1e9) / (2 * perWeight)) * (bytes / (K * N)) / 1e9);
  for (const [k, v] of [["dot", dot], ["read", read], ["limit", limit], ["gbps", gbps], ["pct", (100 * gbps) / limit]] as const) rows[k].push(v);
}
const f = (k: keyof typeof rows): string => median(rows[k]).toFixed(1);
console.log(`GEMV ${K}→${N} ${KERNEL}${COLD ? " cold" : ""}, ${THREADS} threads, ${ROUNDS} rounds (medians): ${peakKernel} ${f("dot")} GOP/s, read ${f("read")} GB/s, limit ${f("limit")} GB/s`);
console.log(`  achieved ${f("gbps")} GB/s = ${f("pct")}% of the limit; per round: ${rows.pct.map((x) => x.toFixed(0)).join(" ")}%`);
b.dispose();
