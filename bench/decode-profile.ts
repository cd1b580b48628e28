// Decode-step profile: where the time of one generated token goes, op by op.
//
// Wraps the backend in a timing proxy (every Backend method, matmuls labelled by weight kind and
// shape), prefills a text prompt of --prompt-tokens to fill the KV cache, then times --steps
// greedy decode steps. Prints per-op milliseconds per step (mean over the steps), the calls per
// step, and the time outside the backend (embedding, KV cache, argmax, graph glue).
// Meant for a checkpoint with the real widths and few layers (tools/make-checkpoint with a config
// of num_hidden_layers 4): per-layer costs scale to the full model by the layer count.
//
//   npx node dist/bench/decode-profile.js --checkpoint DIR [--prompt-tokens 300] [--steps 8]
//        [--backend wasm] [--threads N] [--prefill-ops]   (also list the prefill's costliest ops)
import { parseArgs } from "node:util";
import type { Backend, Linear, LinearWeights, Tensor } from "../src/ops/backend.js";
import { hostData } from "../src/ops/host.js";
import { QwenVL } from "../src/model/qwen-vl.js";
import { createBackend, disposeBackend } from "../src/ops/select.js";
import { argmax } from "../src/generate/sampling.js";

interface Stat {
  ms: number;
  calls: number;
}

/** A Backend that forwards every call and accumulates its wall time under a label. */
function timed(inner: Backend, stats: Map<string, Stat>): { backend: Backend; labels: WeakMap<Linear, string> } {
  const labels = new WeakMap<Linear, string>();
  const add = (label: string, ms: number): void => {
    const s = stats.get(label) ?? { ms: 0, calls: 0 };
    s.ms += ms;
    s.calls += 1;
    stats.set(label, s);
  };
  const backend = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== "function") return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (prop === "linear") {
        return (w: LinearWeights): Linear => {
          const l = fn.call(target, w) as Linear;
          const kind = w.kind === "gptq" ? "q4" : w.dtype;
          labels.set(l, `matmul ${kind} ${w.inFeatures}→${w.outFeatures}`);
          return l;
        };
      }
      return (...args: unknown[]): unknown => {
        const t = performance.now();
        const r = fn.apply(target, args);
        let label = String(prop);
        if (prop === "matmul") label = labels.get(args[1] as Linear) ?? "matmul ?";
        if (prop === "attention") label = `attention Tk=${(args[1] as Tensor).shape[0]}`;
        add(label, performance.now() - t);
        return r;
      };
    },
  });
  return { backend, labels };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: "string" },
      "prompt-tokens": { type: "string", default: "300" },
      steps: { type: "string", default: "8" },
      backend: { type: "string", default: "wasm" },
      threads: { type: "string" },
      "prefill-ops": { type: "boolean", default: false },
    },
  });
  if (!values.checkpoint) throw new Error("decode-profile: --checkpoint DIR is required");
  const promptTokens = Number(values["prompt-tokens"]);
  const steps = Number(values.steps);
  const inner = await createBackend({ name: values.backend!, threads: values.threads ? Number(values.threads) : undefined });
  const stats = new Map<string, Stat>();
  const { backend } = timed(inner, stats);
  try {
    let t = performance.now();
    const model = await QwenVL.load(values.checkpoint, { backend });
    console.log(`load: ${((performance.now() - t) / 1000).toFixed(1)} s (${inner.name}), ${model.config.llm.numLayers} layers`);
    // Plain text ids (below the special tokens), deterministic.
    const ids = Array.from({ length: promptTokens }, (_, i) => (i * 7919 + 13) % 150000);
    const cache = model.newCache(promptTokens + steps + 1);
    t = performance.now();
    let next = argmax(await model.prefill(ids, cache));
    const prefillS = (performance.now() - t) / 1000;
    console.log(`prefill: ${promptTokens} tokens in ${prefillS.toFixed(2)} s = ${(promptTokens / prefillS).toFixed(1)} tok/s`);
    if (values["prefill-ops"]) {
      console.log("prefill ops (ms, calls):");
      for (const [label, st] of [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12)) {
        console.log(`  ${label.padEnd(36)} ${st.ms.toFixed(1).padStart(9)} ${String(st.calls).padStart(6)}`);
      }
    }
    // One untimed warm-up step (first-touch of decode scratch), then the measured steps.
    next = argmax(await model.decodeStep(next, cache));
    stats.clear();
    const stepMs: number[] = [];
    let embedMs = 0, argmaxMs = 0;
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      const x = model.decoder.embed([next]);
      const t1 = performance.now();
      const logits = hostData(model.decoder.forward(x, cache));
      const t2 = performance.now();
      next = argmax(logits);
      const t3 = performance.now();
      embedMs += t1 - t0;
      argmaxMs += t3 - t2;
      stepMs.push(t3 - t0);
    }
    const total = stepMs.reduce((a, b) => a + b, 0) / steps;
    let inBackend = 0;
    const rows = [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms);
    console.log(`\ndecode step: ${total.toFixed(1)} ms (${(1000 / total).toFixed(2)} tok/s), KV length ${cache.length}`);
    console.log("op                                   ms/step   calls/step   ms/call    share");
    for (const [label, s] of rows) {
      const ms = s.ms / steps;
      inBackend += ms;
      console.log(`${label.padEnd(36)} ${ms.toFixed(2).padStart(8)} ${String(s.calls / steps).padStart(12)} ${(s.ms / s.calls).toFixed(3).padStart(9)} ${((100 * ms) / total).toFixed(1).padStart(7)}%`);
    }
    const embed = embedMs / steps, am = argmaxMs / steps;
    console.log(`${"embed".padEnd(36)} ${embed.toFixed(2).padStart(8)}`);
    console.log(`${"argmax".padEnd(36)} ${am.toFixed(2).padStart(8)}`);
    console.log(`${"graph outside the backend".padEnd(36)} ${(total - inBackend - embed - am).toFixed(2).padStart(8)}`);
  } finally {
    await disposeBackend(inner);
  }
}

main().catch((e: Error) => {
  console.error(`decode-profile: ${e.stack ?? e.message}`);
  process.exit(1);
});
