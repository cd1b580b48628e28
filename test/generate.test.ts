// Sampling on hand-made logits, the generation loop on a scripted model (stop tokens, stop strings,
// limits, context window, abort), and the chat API's streaming and image resolution.
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Tensor } from "../src/ops/backend.js";
import {
  Rng, Sampler, applyRepetitionPenalty, applyTemperature, argmax, softmax, topKFilter, topPFilter,
} from "../src/generate/sampling.js";
import { ContextWindowError, generate, generateStream, type CausalLM, type GenerateOptions } from "../src/generate/generate.js";
import { chat, chatStream, resolveImageBytes, type ChatResult } from "../src/chat.js";
import type { QwenVL } from "../src/model/qwen-vl.js";
import { QwenTokenizer } from "../src/tokenizer/tokenizer.js";
import { findImageSpans } from "../src/tokenizer/image-spans.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const IMAGES = path.join(ROOT, "test", "fixtures", "images");

const kept = (l: Float32Array) => Array.from(l, (v, i) => (v === -Infinity ? -1 : i)).filter((i) => i >= 0);

describe("sampling", () => {
  it("argmax takes the first of equal maxima", () => {
    expect(argmax(Float32Array.of(1, 3, 3, 2))).to.equal(1);
    expect(argmax(Float32Array.of(-5, -1, -2))).to.equal(1);
  });

  it("top-k keeps the k largest, ties with the k-th included; 0 is off", () => {
    const a = Float32Array.of(1, 3, 3, 2);
    topKFilter(a, 2);
    expect(kept(a)).to.deep.equal([1, 2]);
    const b = Float32Array.of(1, 3, 3, 2);
    topKFilter(b, 3);
    expect(kept(b)).to.deep.equal([1, 2, 3]);
    const c = Float32Array.of(1, 3, 3, 2);
    topKFilter(c, 0);
    expect(kept(c)).to.deep.equal([0, 1, 2, 3]);
  });

  it("top-p keeps the most likely tokens until their mass reaches p (HF TopPLogitsWarper)", () => {
    const logits = () => Float32Array.from([0.5, 0.3, 0.15, 0.05], Math.log);
    const a = logits();
    topPFilter(a, 0.6); // ascending cumsum 0.05, 0.2, 0.5, 1: removed while ≤ 0.4
    expect(kept(a)).to.deep.equal([0, 1]);
    const b = logits();
    topPFilter(b, 0.9); // removed while ≤ 0.1: only 0.05
    expect(kept(b)).to.deep.equal([0, 1, 2]);
    const c = logits();
    topPFilter(c, 0.01); // everything but the most likely token
    expect(kept(c)).to.deep.equal([0]);
    const d = logits();
    topPFilter(d, 1);
    expect(kept(d)).to.deep.equal([0, 1, 2, 3]);
  });

  it("temperature divides; repetition penalty divides positive and multiplies negative scores, once per id", () => {
    const t = Float32Array.of(2, -4);
    applyTemperature(t, 0.5);
    expect(Array.from(t)).to.deep.equal([4, -8]);
    const r = Float32Array.of(3, -3, 1);
    applyRepetitionPenalty(r, [0, 1, 0, 1, 0], 1.5);
    expect(Array.from(r)).to.deep.equal([2, -4.5, 1]);
  });

  it("greedy with a repetition penalty avoids the repeated token", () => {
    const s = new Sampler({ doSample: false, repetitionPenalty: 1.2 });
    expect(s.next(Float32Array.of(2.0, 1.9), [0])).to.equal(1); // 2/1.2 < 1.9
    expect(new Sampler({ doSample: false }).next(Float32Array.of(2.0, 1.9), [0])).to.equal(0);
  });

  it("the RNG is deterministic per seed and uniform", () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).to.deep.equal(xs);
    expect(Array.from({ length: 5 }, () => c.next())).to.not.deep.equal(xs);
    const r = new Rng(0);
    let sum = 0;
    for (let i = 0; i < 20000; i++) {
      const u = r.next();
      expect(u >= 0 && u < 1).to.equal(true);
      sum += u;
    }
    expect(sum / 20000).to.be.closeTo(0.5, 0.01);
  });

  it("samples in proportion to softmax, never outside top-p/top-k, reproducibly", () => {
    const probs = [0.1, 0.2, 0.3, 0.4];
    const logits = Float32Array.from(probs, Math.log);
    const counts = [0, 0, 0, 0];
    const s = new Sampler({ doSample: true, seed: 7 });
    const draws: number[] = [];
    for (let i = 0; i < 20000; i++) draws.push(s.next(logits, []));
    for (const d of draws) counts[d]++;
    counts.forEach((n, i) => expect(n / 20000).to.be.closeTo(probs[i], 0.015));
    const again = new Sampler({ doSample: true, seed: 7 });
    expect(Array.from({ length: 50 }, () => again.next(logits, []))).to.deep.equal(draws.slice(0, 50));

    const nucleus = new Sampler({ doSample: true, topP: 0.6, seed: 1 }); // keeps {3, 2}
    const topk = new Sampler({ doSample: true, topK: 1, seed: 1 });
    for (let i = 0; i < 500; i++) {
      expect([2, 3]).to.include(nucleus.next(logits, []));
      expect(topk.next(logits, [])).to.equal(3);
    }
    // A low temperature sharpens toward the argmax.
    const cold = new Sampler({ doSample: true, temperature: 0.05, seed: 3 });
    let top = 0;
    for (let i = 0; i < 200; i++) if (cold.next(logits, []) === 3) top++;
    expect(top).to.be.above(190);
  });

  it("rejects nonsense options", () => {
    expect(() => new Sampler({ doSample: true, temperature: 0 })).to.throw(/temperature/);
    expect(() => new Sampler({ doSample: true, topP: 0 })).to.throw(/topP/);
    expect(() => new Sampler({ doSample: true, topK: -1 })).to.throw(/topK/);
    expect(() => new Sampler({ doSample: true, repetitionPenalty: 0 })).to.throw(/repetitionPenalty/);
    expect(softmax(Float32Array.of(0, Math.log(3))).map((p) => Math.round(p * 4))).to.deep.equal(Float64Array.of(1, 3));
  });
});

/** A model that emits `script` (one id per step) through one-hot logits; records what it is fed. */
class ScriptedLM implements CausalLM<{ length: number }> {
  readonly fed: number[] = [];
  prompts: number[][] = [];
  images = 0;
  private step = 0;
  constructor(
    readonly script: readonly number[],
    readonly vocab: number,
    readonly maxContext = 1000,
  ) {}
  private logits(): Float32Array {
    const l = new Float32Array(this.vocab);
    l[this.script[Math.min(this.step, this.script.length - 1)]] = 10;
    return l;
  }
  newCache(): { length: number } {
    return { length: 0 };
  }
  async prefill(ids: ArrayLike<number>, cache: { length: number }, options: { imageEmbeds?: readonly Tensor[] }): Promise<Float32Array> {
    this.prompts.push(Array.from(ids));
    this.images = options.imageEmbeds?.length ?? 0;
    cache.length = ids.length;
    this.step = 0;
    return this.logits();
  }
  async decodeStep(id: number, cache: { length: number }): Promise<Float32Array> {
    if (cache.length + 1 > this.maxContext) throw new Error("fed past the context window");
    this.fed.push(id);
    cache.length++;
    this.step++;
    return this.logits();
  }
}

describe("generation loop", () => {
  const base: GenerateOptions = { maxNewTokens: 100, stopTokenIds: [9] };

  it("stops at a stop token, which is not part of the output", async () => {
    const m = new ScriptedLM([1, 2, 3, 9, 4], 10);
    const r = await generate(m, [5, 5], base);
    expect(r.ids).to.deep.equal([1, 2, 3]);
    expect(r.finishReason).to.equal("stop_token");
    expect(r.stopToken).to.equal(9);
    expect(m.fed).to.deep.equal([1, 2, 3]);
    expect(r.decodeSteps).to.equal(3);
  });

  it("stops after maxNewTokens without feeding the last token", async () => {
    const m = new ScriptedLM([1, 2, 3, 4, 5, 6], 10);
    const r = await generate(m, [5], { ...base, maxNewTokens: 4 });
    expect(r.ids).to.deep.equal([1, 2, 3, 4]);
    expect(r.finishReason).to.equal("max_new_tokens");
    expect(m.fed).to.deep.equal([1, 2, 3]);
  });

  it("stops on a stop string in the decoded output", async () => {
    const m = new ScriptedLM([0, 1, 2, 3, 4, 5], 10);
    const decode = (ids: readonly number[]) => ids.map((i) => "abcdefghij"[i]).join("");
    const r = await generate(m, [5], { ...base, stopStrings: ["cd"], decode });
    expect(r.ids).to.deep.equal([0, 1, 2, 3]);
    expect(r.finishReason).to.equal("stop_string");
    expect(r.stopString).to.equal("cd");
    let err: unknown;
    await generateStream(m, [5], { ...base, stopStrings: ["x"] }).next().catch((e) => (err = e));
    expect(String(err)).to.match(/stopStrings need a decode function/);
  });

  it("refuses a prompt that does not fit the context window, and stops at the window", async () => {
    const m = new ScriptedLM([1, 2, 3, 4, 5, 6], 10, 10);
    let err: unknown;
    await generate(m, new Array<number>(10).fill(5), base).catch((e) => (err = e));
    expect(err).to.be.instanceOf(ContextWindowError);
    expect(String(err)).to.match(/10 tokens but the context window holds 10/);
    const r = await generate(m, new Array<number>(8).fill(5), base);
    expect(r.ids).to.deep.equal([1, 2]);
    expect(r.finishReason).to.equal("context_window");
    let bad: unknown;
    await generate(m, [5], { ...base, contextWindow: 11 }).catch((e) => (bad = e));
    expect(String(bad)).to.match(/contextWindow must be an integer in \[2, 10\]/);
  });

  it("honours an abort signal between steps", async () => {
    const m = new ScriptedLM([1, 2, 3, 4], 10);
    const ac = new AbortController();
    const it = generateStream(m, [5], { ...base, signal: ac.signal });
    expect((await it.next()).value).to.equal(1);
    ac.abort();
    const last = await it.next();
    expect(last.done).to.equal(true);
    expect((last.value as { finishReason: string }).finishReason).to.equal("aborted");
  });

  it("sampled generation is reproducible per seed", async () => {
    const flat = new ScriptedLM([0], 50);
    const run = async (seed: number) =>
      (await generate(flat, [1], { maxNewTokens: 20, sampling: { doSample: true, temperature: 100, seed } })).ids;
    const a = await run(11);
    expect(await run(11)).to.deep.equal(a);
    expect(await run(12)).to.not.deep.equal(a);
  });
});

describe("chat API", function () {
  this.timeout(20_000);
  let tok: QwenTokenizer;
  before(() => {
    tok = QwenTokenizer.load();
  });
  after(() => tok.dispose());

  /** A QwenVL stand-in: the real vocabulary size and image ids, scripted output. */
  function fakeModel(script: number[], encoded: { name: string; bytes: number }[] = []) {
    const lm = new ScriptedLM(script, 151936, 8192);
    const model = {
      dir: "scripted",
      generation: null,
      vocabSize: 151936,
      imageStartId: 151857,
      maxContext: lm.maxContext,
      imageSpans: (ids: ArrayLike<number>) => findImageSpans(ids, 151857),
      encodeImage: async (bytes: Uint8Array, name: string) => {
        encoded.push({ name, bytes: bytes.length });
        return new Tensor([256, 8], new Float32Array(256 * 8));
      },
      newCache: () => lm.newCache(),
      prefill: lm.prefill.bind(lm),
      decodeStep: lm.decodeStep.bind(lm),
    };
    return { lm, model: model as unknown as QwenVL };
  }

  async function collect(it: AsyncGenerator<string, ChatResult>): Promise<{ deltas: string[]; result: ChatResult }> {
    const deltas: string[] = [];
    for (;;) {
      const r = await it.next();
      if (r.done) return { deltas, result: r.value };
      deltas.push(r.value);
    }
  }

  it("streams UTF-8-safe deltas that add up to the reply, and extends the history", async () => {
    // "😀" as four single-byte tokens: no delta may carry half of it.
    const byteId = new Map<number, number>();
    for (let i = 0; i < 256; i++) {
      const b = tok.decodeBytes([i]);
      if (b.length === 1) byteId.set(b[0], i);
    }
    const emoji = Array.from(new TextEncoder().encode("😀"), (b) => byteId.get(b)!);
    const script = [...tok.encode("Hello 世界 "), ...emoji, ...tok.encode(" world"), tok.imEndId];
    const { lm, model } = fakeModel(script);
    const { deltas, result } = await collect(chatStream(model, tok, "hi", { history: [["q0", "r0"]], generation: { doSample: false } }));
    expect(deltas.join("")).to.equal("Hello 世界 😀 world");
    expect(deltas.every((d) => !d.includes("\uFFFD"))).to.equal(true);
    expect(result.response).to.equal("Hello 世界 😀 world");
    expect(result.history).to.deep.equal([["q0", "r0"], ["hi", "Hello 世界 😀 world"]]);
    expect(result.stats.finishReason).to.equal("stop_token");
    // The prompt is make_context's ChatML with the default system prompt.
    expect(tok.decode(lm.prompts[0])).to.equal(
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nq0<|im_end|>\n<|im_start|>assistant\nr0<|im_end|>\n" +
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("never shows a stop string or its beginning, and ends the reply before it", async () => {
    const script = [...tok.encode(" Answer: 42 STOP and more"), tok.imEndId];
    const { model } = fakeModel(script);
    const { deltas, result } = await collect(chatStream(model, tok, "q", { generation: { doSample: false, stopStrings: ["STOP"] } }));
    expect(result.response).to.equal("Answer: 42");
    expect(result.stats.finishReason).to.equal("stop_string");
    expect(deltas.join("")).to.equal(" Answer: 42 ");
    const plain = await chat(fakeModel(script).model, tok, "q", { generation: { doSample: false } });
    expect(plain.response).to.equal("Answer: 42 STOP and more");
  });

  it("encodes each <img> of the conversation from imagesDir, and never fetches URLs", async () => {
    const encoded: { name: string; bytes: number }[] = [];
    const { lm, model } = fakeModel([tok.encode("ok")[0], tok.imEndId], encoded);
    const query = "Picture 1:<img>demo.jpeg</img>\nPicture 2:<img>radar.png</img>\nCompare.";
    const r = await chat(model, tok, query, { imagesDir: IMAGES, history: [["<img>demo.jpeg</img>what?", "a dog"]] });
    expect(r.response).to.equal("ok");
    // demo.jpeg appears twice (history and query) but is encoded once; three spans get embeddings.
    expect(encoded.map((e) => e.name)).to.deep.equal(["demo.jpeg", "radar.png"]);
    expect(encoded[0].bytes).to.equal(fs.statSync(path.join(IMAGES, "demo.jpeg")).size);
    expect(lm.images).to.equal(3);

    let err: unknown;
    await chat(model, tok, "<img>https://example.com/x.jpg</img>hi", { imagesDir: IMAGES }).catch((e) => (err = e));
    expect(String(err)).to.match(/URLs are never fetched/);
    const supplied = await chat(model, tok, "<img>https://example.com/x.jpg</img>hi", {
      imagesDir: IMAGES,
      images: { "https://example.com/x.jpg": Uint8Array.of(1, 2, 3) },
    });
    expect(supplied.response).to.equal("ok");
    expect(encoded[encoded.length - 1]).to.deep.equal({ name: "https://example.com/x.jpg", bytes: 3 });
  });

  it("keeps image paths inside imagesDir unless allowed", () => {
    expect(() => resolveImageBytes("../package.json", { imagesDir: IMAGES })).to.throw(/outside imagesDir/);
    expect(() => resolveImageBytes("/etc/hostname", { imagesDir: IMAGES })).to.throw(/outside imagesDir/);
    expect(() => resolveImageBytes("missing.png", { imagesDir: IMAGES })).to.throw(/no such file/);
    expect(resolveImageBytes("../../../package.json", { imagesDir: IMAGES, allowPathsOutsideImagesDir: true }).length).to.be.above(0);
  });

  it("refuses a tokenizer whose ids do not fit the checkpoint", async () => {
    const { model } = fakeModel([0]);
    (model as unknown as { vocabSize: number }).vocabSize = 2048;
    let err: unknown;
    await chat(model, tok, "hi").catch((e) => (err = e));
    expect(String(err)).to.match(/vocab_size 2048 is smaller than the tokenizer's 151860 ids/);
  });
});
