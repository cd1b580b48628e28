// GPU time per shader of the WebGPU backend, from timestamp queries, for one image, one prefill
// and --steps decode steps of a checkpoint (meant for the full-size synthetic one).
//
//   npx node dist/bench/webgpu-profile.js --checkpoint DIR [--image FILE] [--prompt-tokens 300]
//        [--steps 16] [--json FILE]
//
// Two passes over the same work:
// 1. plain: the backend as it runs, with the host side of each decode step split into encoding
//    (from the step's start to its submit) and waiting (submit to logits on the host);
// 2. timed: every dispatch in a compute pass of its own whose begin/end timestamps are written
//    to a query set (Dawn offers no timestamps inside a pass), resolved at each submit. Splitting
//    the pass adds a little per dispatch, so these times add up to a bit more than pass 1's.
// The timestamps need the adapter's `timestamp-query` and Dawn's `timestamp_quantization` off
// (the backend is created with it disabled: BackendChoice.disabledToggles).
//
// It reaches into the backend's GpuContext (src/ops/webgpu/context.ts: dispatch, flush, read,
// endPass, enc, pass) and fails with a clear message if those change.
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { QwenVL } from "../src/model/qwen-vl.js";
import { createBackend, disposeBackend } from "../src/ops/select.js";
import { argmax } from "../src/generate/sampling.js";
import type { Backend } from "../src/ops/backend.js";
import { benchPrompt } from "./e2e.js";
import type { WebGpuCounters } from "../src/ops/webgpu/backend.js";

// The few WebGPU calls used here, typed structurally (the package's types are a devDependency of
// the backend, not of the benchmarks).
interface GpuBuffer {
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}
interface GpuEncoder {
  beginComputePass(d?: object): object;
  resolveQuerySet(qs: object, first: number, count: number, dst: GpuBuffer, offset: number): void;
  copyBufferToBuffer(src: GpuBuffer, so: number, dst: GpuBuffer, d: number, n: number): void;
}
interface GpuDevice {
  features: Set<string>;
  createQuerySet(d: { type: "timestamp"; count: number }): object;
  createBuffer(d: { size: number; usage: number }): GpuBuffer;
}
/** What this program uses of GpuContext. */
interface CtxInternals {
  device: GpuDevice;
  pass: object | null;
  enc(): GpuEncoder;
  endPass(): void;
  dispatch(name: string, ...rest: unknown[]): void;
  flush(): void;
  read(...a: unknown[]): Promise<Float32Array>;
}

// Dawn limits a query set to 4096 queries (two per timed dispatch).
const MAX_QUERIES = 4096;
const MAX_TIMED = MAX_QUERIES / 2;

interface Stat {
  ns: number;
  calls: number;
}

/** Per-dispatch timestamps on a GpuContext: install() patches the instance, phase() switches the bucket. */
class DispatchTimer {
  private names: string[] = [];
  private pending: { names: string[]; buf: GpuBuffer }[] = [];
  readonly phases = new Map<string, Map<string, Stat>>();
  private current = new Map<string, Stat>();
  private readonly qs: object;
  private readonly resolveBuf: GpuBuffer;

  constructor(private readonly ctx: CtxInternals) {
    const U = (globalThis as unknown as { GPUBufferUsage: Record<string, number> }).GPUBufferUsage;
    this.qs = ctx.device.createQuerySet({ type: "timestamp", count: MAX_QUERIES });
    this.resolveBuf = ctx.device.createBuffer({ size: MAX_QUERIES * 8, usage: U.QUERY_RESOLVE | U.COPY_SRC });
  }

  phase(name: string): void {
    this.current = new Map();
    this.phases.set(name, this.current);
  }

  install(): void {
    const ctx = this.ctx;
    const U = (globalThis as unknown as { GPUBufferUsage: Record<string, number> }).GPUBufferUsage;
    const dispatch = ctx.dispatch.bind(ctx);
    const flush = ctx.flush.bind(ctx);
    const read = ctx.read.bind(ctx);
    ctx.dispatch = (name: string, ...rest: unknown[]): void => {
      if (this.names.length === MAX_TIMED) ctx.flush();
      ctx.endPass();
      const k = this.names.length;
      ctx.pass = ctx.enc().beginComputePass({
        timestampWrites: { querySet: this.qs, beginningOfPassWriteIndex: 2 * k, endOfPassWriteIndex: 2 * k + 1 },
      });
      this.names.push(name);
      dispatch(name, ...rest);
      ctx.endPass();
    };
    ctx.flush = (): void => {
      const n = this.names.length;
      if (n > 0) {
        ctx.endPass();
        const buf = ctx.device.createBuffer({ size: n * 16, usage: U.MAP_READ | U.COPY_DST });
        ctx.enc().resolveQuerySet(this.qs, 0, 2 * n, this.resolveBuf, 0);
        ctx.enc().copyBufferToBuffer(this.resolveBuf, 0, buf, 0, n * 16);
        this.pending.push({ names: this.names, buf });
        this.names = [];
      }
      flush();
    };
    ctx.read = async (...a: unknown[]): Promise<Float32Array> => {
      const r = await read(...a);
      await this.collect();
      return r;
    };
  }

  private async collect(): Promise<void> {
    const READ = (globalThis as unknown as { GPUMapMode: { READ: number } }).GPUMapMode.READ;
    for (const { names, buf } of this.pending.splice(0)) {
      await buf.mapAsync(READ);
      const t = new BigUint64Array(buf.getMappedRange().slice(0));
      buf.unmap();
      buf.destroy();
      names.forEach((name, i) => {
        const ns = t[2 * i + 1] > t[2 * i] ? Number(t[2 * i + 1] - t[2 * i]) : 0;
        const s = this.current.get(name) ?? { ns: 0, calls: 0 };
        s.ns += ns;
        s.calls += 1;
        this.current.set(name, s);
      });
    }
  }
}

function printPhase(title: string, stats: Map<string, Stat>, per: number, wallMs: number): Record<string, { ms: number; calls: number }> {
  const rows = [...stats.entries()].sort((a, b) => b[1].ns - a[1].ns);
  const total = rows.reduce((a, [, s]) => a + s.ns, 0) / 1e6 / per;
  console.log(`\n${title}: GPU ${total.toFixed(3)} ms (sum of dispatches), wall ${wallMs.toFixed(3)} ms (with split passes)`);
  console.log("  shader              ms       calls   µs/call   share");
  const out: Record<string, { ms: number; calls: number }> = {};
  for (const [name, s] of rows) {
    const ms = s.ns / 1e6 / per;
    const calls = s.calls / per;
    out[name] = { ms, calls };
    console.log(`  ${name.padEnd(16)} ${ms.toFixed(3).padStart(9)} ${calls.toFixed(0).padStart(9)} ${((ms * 1e3) / calls).toFixed(1).padStart(9)} ${((100 * ms) / total).toFixed(1).padStart(6)} %`);
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: "string" },
      image: { type: "string", default: "test/fixtures/images/demo.jpeg" },
      "prompt-tokens": { type: "string", default: "300" },
      steps: { type: "string", default: "16" },
      json: { type: "string" },
    },
  });
  if (!values.checkpoint) throw new Error("webgpu-profile: --checkpoint DIR is required");
  const steps = Number(values.steps);
  const promptTokens = Number(values["prompt-tokens"]);
  if (!(Number.isInteger(steps) && steps >= 1)) throw new Error(`--steps must be a positive integer, got ${values.steps}`);

  // Timestamps not quantised (see the header).
  const backend: Backend = await createBackend({ name: "webgpu", disabledToggles: ["timestamp_quantization"] });
  const maybe = (backend as unknown as { ctx?: CtxInternals }).ctx;
  for (const m of ["dispatch", "flush", "read", "endPass", "enc"] as const) {
    if (!maybe || typeof maybe[m] !== "function") throw new Error(`webgpu-profile: the backend has no GpuContext.${m} (context.ts changed?)`);
  }
  const ctx: CtxInternals = maybe!;
  if (!ctx.device.features.has("timestamp-query")) throw new Error("webgpu-profile: the adapter has no timestamp-query");
  const report: Record<string, unknown> = { backend: backend.name };
  try {
    const model = await QwenVL.load(values.checkpoint, { backend });
    const bytes = new Uint8Array(fs.readFileSync(values.image!));
    const ids = benchPrompt(model, values.image!, promptTokens);

    // Pass 1: where a decode step's wall time goes on the host.
    let lastFlush = 0;
    const flush = ctx.flush.bind(ctx);
    ctx.flush = (): void => {
      flush();
      lastFlush = performance.now();
    };
    let embeds = await model.encodeImage(bytes, values.image);
    let cache = model.newCache(ids.length + steps + 1);
    let next = argmax(await model.prefill(ids, cache, { imageEmbeds: [embeds] }));
    let encodeMs = 0;
    let waitMs = 0;
    const counters = (): WebGpuCounters => (backend as unknown as { counters: WebGpuCounters }).counters;
    const c0 = counters();
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      next = argmax(await model.decodeStep(next, cache));
      encodeMs += lastFlush - t0;
      waitMs += performance.now() - lastFlush;
    }
    const c1 = counters();
    const per = (k: keyof WebGpuCounters): number => (c1[k] - c0[k]) / steps;
    report.decode_host_encode_ms = encodeMs / steps;
    report.decode_submit_to_logits_ms = waitMs / steps;
    // Of the host encoding: the context's own share (dispatch/copy/clear, and flush), per step.
    report.decode_ctx_encode_ms = per("encodeMs");
    report.decode_ctx_submit_ms = per("submitMs");
    report.decode_dispatches = per("dispatches");
    report.decode_submits = per("submits");
    report.decode_bind_groups_created = per("bindGroupsCreated");
    report.decode_bind_groups_reused = per("bindGroupsReused");
    console.log(`decode step (plain): ${(encodeMs / steps).toFixed(3)} ms encoding on the host, ${(waitMs / steps).toFixed(3)} ms from submit to logits`);
    console.log(`  of the encoding: ${per("encodeMs").toFixed(3)} ms in dispatch/copy/clear, ${per("submitMs").toFixed(3)} ms in submits; ` +
      `${per("dispatches")} dispatches and copies, ${per("submits")} submits, bind groups ${per("bindGroupsCreated")} made / ${per("bindGroupsReused")} reused per step`);
    ctx.flush = flush;
    backend.release(embeds);

    // Pass 2: GPU time per shader.
    const timer = new DispatchTimer(ctx);
    timer.install();
    timer.phase("image");
    let t = performance.now();
    embeds = await model.encodeImage(bytes, values.image);
    await backend.read(backend.sliceRows(embeds, 0, 1));
    report.image = printPhase("image (448², one)", timer.phases.get("image")!, 1, performance.now() - t);
    cache = model.newCache(ids.length + steps + 1);
    timer.phase("prefill");
    t = performance.now();
    next = argmax(await model.prefill(ids, cache, { imageEmbeds: [embeds] }));
    report.prefill = printPhase(`prefill (${ids.length} tokens)`, timer.phases.get("prefill")!, 1, performance.now() - t);
    timer.phase("decode");
    t = performance.now();
    for (let i = 0; i < steps; i++) next = argmax(await model.decodeStep(next, cache));
    report.decode = printPhase(`decode step (mean of ${steps})`, timer.phases.get("decode")!, steps, (performance.now() - t) / steps);
    if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2) + "\n");
  } finally {
    await disposeBackend(backend);
  }
}

main().catch((e: Error) => {
  console.error(`webgpu-profile: ${e.message}`);
  process.exit(1);
});
