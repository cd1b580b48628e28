// Checkpoint (single / sharded), config parsing, VarBuilder, and the synthetic writer.
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Checkpoint } from "../src/io/checkpoint.js";
import { encodeHeader, type DType } from "../src/io/safetensors.js";
import { VarBuilder } from "../src/io/var-builder.js";
import { loadGenerationDefaults, loadModelConfig, parseGenerationConfig, parseModelConfig } from "../src/config.js";
import { f16ToF32 } from "../src/io/fp16.js";
import type { DenseWeights, GptqWeights } from "../src/ops/backend.js";
import { DEFAULT_SHARD_SIZE, configsDir, modelLayout, planShards, tensorList, writeSyntheticCheckpoint } from "../tools/make-checkpoint.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const TINY = path.join(ROOT, "test", "fixtures", "tiny-a", "checkpoint");
let tmp: string;

function readJson(p: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(p, "utf8"));
}

/** A single-file checkpoint from {name: [dtype, shape, typed data]}. */
function writeSingle(dir: string, file: string, tensors: Record<string, [DType, number[], ArrayBufferView]>): string {
  fs.mkdirSync(dir, { recursive: true });
  const entries = Object.entries(tensors).map(([name, [dtype, shape]]) => ({ name, dtype, shape }));
  const { header } = encodeHeader(entries);
  const parts = [header, ...Object.values(tensors).map(([, , d]) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength))];
  fs.writeFileSync(path.join(dir, file), Buffer.concat(parts));
  return dir;
}

function layoutOf(ckpt: Checkpoint): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of ckpt.names()) {
    const i = ckpt.info(n);
    out[n] = `${i.dtype}[${i.shape.join(",")}]`;
  }
  return out;
}

describe("checkpoint", () => {
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qwenvl-ck-"));
  });
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("opens the sharded tiny-a checkpoint and reports progress up to the total", () => {
    let last: [number, number] = [0, 0];
    const ck = Checkpoint.open(TINY, { onProgress: (d, t) => (last = [d, t]) });
    expect(ck.layout).to.equal("sharded");
    expect(ck.files).to.have.length(2);
    expect(ck.names()).to.have.length(99);
    expect(ck.totalBytes).to.equal(ck.indexTotalSize).and.to.equal(4921304);
    for (const n of ck.names()) ck.read(n);
    expect(last).to.deep.equal([4921304, 4921304]);
    expect(() => ck.info("transformer.h.9.ln_1.weight")).to.throw(/missing tensor "transformer.h.9.ln_1.weight"/);
    ck.close();
  });

  it("opens a single model.safetensors, and fails clearly on an empty directory", () => {
    const dir = writeSingle(path.join(tmp, "single"), "model.safetensors", {
      a: ["F32", [2], new Float32Array([1, 2])],
    });
    const ck = Checkpoint.open(dir);
    expect(ck.layout).to.equal("single");
    expect(Array.from(ck.read("a").data as Float32Array)).to.deep.equal([1, 2]);
    ck.close();
    fs.mkdirSync(path.join(tmp, "empty"));
    fs.writeFileSync(path.join(tmp, "empty", "pytorch_model.bin"), "x");
    expect(() => Checkpoint.open(path.join(tmp, "empty"))).to.throw(/neither model.safetensors.index.json nor model.safetensors found.*pytorch_model\.bin/);
  });

  it("rejects an index pointing to a missing shard", () => {
    const dir = path.join(tmp, "noshard");
    fs.mkdirSync(dir);
    fs.writeFileSync(
      path.join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: 8 }, weight_map: { a: "model-00001-of-00002.safetensors" } }),
    );
    expect(() => Checkpoint.open(dir)).to.throw(/tensor "a" is in shard "model-00001-of-00002.safetensors", which is missing/);
  });

  it("rejects an index and shard headers that disagree", () => {
    const dir = writeSingle(path.join(tmp, "disagree"), "s1.safetensors", { a: ["F32", [1], new Float32Array(1)] });
    const index = path.join(dir, "model.safetensors.index.json");
    fs.writeFileSync(index, JSON.stringify({ weight_map: { a: "s1.safetensors", b: "s1.safetensors" } }));
    expect(() => Checkpoint.open(dir)).to.throw(/tensor "b" is listed in shard "s1.safetensors", but .* has no such tensor/);
    fs.writeFileSync(index, JSON.stringify({ weight_map: { b: "s2.safetensors" } }));
    writeSingle(dir, "s2.safetensors", { b: ["F32", [1], new Float32Array(1)], c: ["F32", [1], new Float32Array(1)] });
    expect(() => Checkpoint.open(dir)).to.throw(/tensor "c" is not listed for this shard/);
  });
});

describe("config", () => {
  it("parses tiny-a and the published Qwen-VL-Chat config", () => {
    const tiny = loadModelConfig(TINY);
    expect(tiny.llm).to.include({ hiddenSize: 256, numLayers: 2, numHeads: 2, kvChannels: 128, projectionSize: 256 });
    expect(tiny.llm).to.include({ intermediateSize: 1024, mlpWidth: 512, vocabSize: 2048, seqLength: 96, noBias: true });
    expect(tiny.llm).to.include({ useDynamicNtk: true, useLognAttn: true, rotaryEmbBase: 10000, rotaryPct: 1, layerNormEpsilon: 1e-6 });
    expect(tiny.llm.quantization).to.deep.equal({ bits: 4, groupSize: 128, descAct: false, sym: true });
    expect(tiny.visual).to.include({ width: 128, layers: 2, heads: 4, mlpWidth: 630, outputDim: 256, imageStartId: 1900, nQueries: 256 });
    const full = parseModelConfig(readJson(path.join(configsDir(), "qwen-vl-chat-int4.json")));
    expect(full.llm).to.include({ hiddenSize: 4096, numLayers: 32, mlpWidth: 11008, vocabSize: 151936, maxPositionEmbeddings: 8192 });
    expect(full.visual).to.include({ width: 1664, layers: 48, heads: 16, mlpWidth: 8192, outputDim: 4096, poolHeads: 32, imageStartId: 151857 });
  });

  it("takes quantisation from quantize_config.json when config.json has none", () => {
    const json = readJson(path.join(TINY, "config.json"));
    delete json.quantization_config;
    expect(parseModelConfig(json).llm.quantization).to.equal(null);
    const q = parseModelConfig(json, "config.json", { bits: 4, group_size: 64, desc_act: true, sym: true });
    expect(q.llm.quantization).to.deep.equal({ bits: 4, groupSize: 64, descAct: true, sym: true });
  });

  it("names the field and file of a missing or mistyped value", () => {
    const json = readJson(path.join(TINY, "config.json"));
    expect(() => parseModelConfig({ ...json, hidden_size: "256" }, "my/config.json")).to.throw(/my\/config.json: field "hidden_size" must be an integer/);
    const { vocab_size: _, ...noVocab } = json;
    expect(() => parseModelConfig(noVocab, "c.json")).to.throw(/c.json: missing field "vocab_size"/);
    const visual = { ...(json.visual as object), width: 1.5 };
    expect(() => parseModelConfig({ ...json, visual }, "c.json")).to.throw(/c.json visual: field "width" must be an integer/);
    expect(() => parseModelConfig({ ...json, use_logn_attn: 1 }, "c.json")).to.throw(/field "use_logn_attn" must be true or false/);
    expect(() => parseModelConfig({ ...json, intermediate_size: 1023 }, "c.json")).to.throw(/"intermediate_size" must be even/);
    expect(() => parseModelConfig({ ...json, rotary_pct: 0 }, "c.json")).to.throw(/"rotary_pct" must be in \(0, 1\]/);
    const v2 = { ...(json.visual as object), output_dim: 200 };
    expect(() => parseModelConfig({ ...json, visual: v2 }, "c.json")).to.throw(/visual.output_dim must be a multiple of 128/);
    const v3 = { ...(json.visual as object), image_size: 450 };
    expect(() => parseModelConfig({ ...json, visual: v3 }, "c.json")).to.throw(/image_size 450 is not a multiple of visual.patch_size 14/);
  });

  it("reads generation defaults", () => {
    const g = loadGenerationDefaults(TINY);
    expect(g).to.deep.equal({
      chatFormat: "chatml",
      eosTokenId: 151643,
      padTokenId: 151643,
      maxWindowSize: 6144,
      maxNewTokens: 512,
      doSample: true,
      topK: 0,
      topP: 0.5,
      temperature: 1.0,
      repetitionPenalty: 1.0,
    });
    expect(parseGenerationConfig({ chat_format: "chatml", eos_token_id: 1, max_window_size: 10, temperature: 0.7 }).temperature).to.equal(0.7);
    expect(() => parseGenerationConfig({ chat_format: "chatml", max_window_size: 10 }, "g.json")).to.throw(/g.json: missing field "eos_token_id"/);
  });
});

describe("VarBuilder", () => {
  it("loads tiny-a GPTQ and dense linears with validated shapes", () => {
    const { vb, config } = VarBuilder.open(TINY);
    const { llm, visual } = config;
    const h0 = vb.pp("transformer").pp("h.0");
    expect(h0.path("attn.c_attn")).to.equal("transformer.h.0.attn.c_attn");
    const qkv = h0.linear("attn.c_attn", { inFeatures: llm.hiddenSize, outFeatures: 3 * llm.projectionSize, bias: true }) as GptqWeights;
    expect(qkv.kind).to.equal("gptq");
    expect(qkv.groupSize).to.equal(128);
    expect(qkv.qweight).to.be.instanceOf(Int32Array).with.length(32 * 768);
    expect(qkv.scales).to.be.instanceOf(Uint16Array).with.length(2 * 768);
    expect(qkv.bias).to.be.instanceOf(Float32Array).with.length(768);
    const lm = vb.linear("lm_head", { inFeatures: llm.hiddenSize, outFeatures: llm.vocabSize, bias: false }) as DenseWeights;
    expect(lm.kind).to.equal("dense");
    expect(lm.dtype).to.equal("f16");
    expect(lm.weight).to.be.instanceOf(Uint16Array).with.length(2048 * 256);
    const ln = vb.f32("transformer.ln_f.weight", [256]);
    expect(ln).to.be.instanceOf(Float32Array);
    // proj is a bare parameter used as x @ proj: the loader hands it over as [out, in].
    const v = vb.pp("transformer.visual");
    const proj = v.linear("proj", { inFeatures: visual.outputDim, outFeatures: visual.outputDim, bias: false, transposed: true }) as DenseWeights;
    const raw = v.f32("proj", [256, 256]);
    expect(f16ToF32((proj.weight as Uint16Array)[3 * 256 + 5])).to.equal(raw[5 * 256 + 3]);
    expect(() => vb.f32("transformer.ln_f.weight", [128])).to.throw(
      /model-00002-of-00002.safetensors: tensor "transformer.ln_f.weight" has shape \[256\], but the config implies \[128\]/,
    );
    expect(() => vb.linear("transformer.h.0.attn.c_proj", { inFeatures: 256, outFeatures: 512, bias: false })).to.throw(
      /tensor "transformer.h.0.attn.c_proj.qweight" has shape \[32, 256\], but the config implies \[32, 512\]/,
    );
    expect(() => vb.pp("transformer").f32("nothing", [1])).to.throw(/missing tensor "transformer.nothing"/);
    expect(() => vb.f32("transformer.h.0.attn.c_attn.g_idx", [256])).to.throw(/dtype I32, expected F16 or BF16 or F32 or F64/);
  });

  it("rejects GPTQ with unsupported bits, bad g_idx, or no quantisation config", () => {
    const ck = Checkpoint.open(TINY);
    const spec = { inFeatures: 256, outFeatures: 768, bias: true };
    expect(() => new VarBuilder(ck, { bits: 8, groupSize: 128, descAct: false, sym: true }).linear("transformer.h.0.attn.c_attn", spec)).to.throw(
      /GPTQ with 8 bits is not supported/,
    );
    expect(() => new VarBuilder(ck, null).linear("transformer.h.0.attn.c_attn", spec)).to.throw(/config.json has no quantization_config/);
    const q4 = (groupSize: number) => new VarBuilder(ck, { bits: 4, groupSize, descAct: false, sym: true });
    expect(() => q4(100).linear("transformer.h.0.attn.c_attn", spec)).to.throw(/group_size 100 does not divide in_features 256/);
    expect(() => q4(128).linear("transformer.h.0.attn.c_attn", { ...spec, outFeatures: 770 })).to.throw(/must be multiples of 8/);
    // With group size 256 the tensors have the wrong group count: named, with both shapes.
    expect(() => new VarBuilder(ck, { bits: 4, groupSize: 256, descAct: false, sym: true }).linear("transformer.h.0.attn.c_attn", spec)).to.throw(
      /qzeros" has shape \[2, 96\], but the config implies \[1, 96\]/,
    );
    ck.close();

    const dir = path.join(tmp, "badgidx");
    const K = 16;
    const N = 8;
    writeSingle(dir, "model.safetensors", {
      "l.qweight": ["I32", [K / 8, N], new Int32Array((K / 8) * N)],
      "l.qzeros": ["I32", [2, N / 8], new Int32Array(2)],
      "l.scales": ["F16", [2, N], new Uint16Array(2 * N)],
      "l.g_idx": ["I32", [K], Int32Array.from({ length: K }, (_, i) => (i === 5 ? 2 : i >> 3))],
      "l.bias": ["F16", [N], new Uint16Array(N)],
    });
    const bad = new VarBuilder(Checkpoint.open(dir), { bits: 4, groupSize: 8, descAct: true, sym: true });
    expect(() => bad.linear("l", { inFeatures: K, outFeatures: N, bias: true })).to.throw(/"l.g_idx"\[5\] = 2, outside the 2 groups/);
  });

  it("reads weights straight into caller memory with options.allocate", () => {
    const arena = new ArrayBuffer(4 << 20);
    let top = 1; // deliberately misaligned start: the allocator must align
    const allocate = (n: number) => {
      top = Math.ceil(top / 8) * 8;
      const view = new Uint8Array(arena, top, n);
      top += n;
      return view;
    };
    const plain = VarBuilder.open(TINY).vb;
    const { vb } = VarBuilder.open(TINY, { allocate });
    const spec = { inFeatures: 256, outFeatures: 768, bias: true };
    const a = vb.linear("transformer.h.1.attn.c_attn", spec) as GptqWeights;
    const b = plain.linear("transformer.h.1.attn.c_attn", spec) as GptqWeights;
    expect(a.qweight.buffer).to.equal(arena);
    expect(a.scales.buffer).to.equal(arena);
    expect(a.qweight).to.deep.equal(b.qweight);
    expect(a.gIdx).to.deep.equal(b.gIdx);
    expect(a.bias).to.deep.equal(b.bias);
    expect(a.bias!.buffer).to.not.equal(arena); // converted f16 → f32: a fresh array
    const lm = vb.linear("lm_head", { inFeatures: 256, outFeatures: 2048, bias: false }) as DenseWeights;
    expect(lm.weight.buffer).to.equal(arena);
    const ck = Checkpoint.open(TINY);
    expect(() => ck.read("transformer.ln_f.weight", new Uint8Array(10))).to.throw(/has 512 bytes, destination holds 10/);
    expect(() => ck.read("transformer.h.0.attn.c_attn.g_idx", new Uint8Array(arena, 2, 1024))).to.throw(/not aligned to 4 bytes/);
  });

  it("loads dense f32 / bf16 linears, transposed and with bias", () => {
    const dir = path.join(tmp, "dense");
    const w = new Float32Array([1, 2, 3, 4, 5, 6]); // [in=2, out=3] when transposed
    writeSingle(dir, "model.safetensors", {
      "t.weight": ["F32", [2, 3], w],
      "t.bias": ["BF16", [3], new Uint16Array([0x3f80, 0x4000, 0xbf80])],
      "h.weight": ["BF16", [3, 2], new Uint16Array([0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0])],
    });
    const vb = new VarBuilder(Checkpoint.open(dir), null);
    const t = vb.linear("t", { inFeatures: 2, outFeatures: 3, bias: true, transposed: true }) as DenseWeights;
    expect(t.dtype).to.equal("f32");
    expect(Array.from(t.weight)).to.deep.equal([1, 4, 2, 5, 3, 6]);
    expect(Array.from(t.bias!)).to.deep.equal([1, 2, -1]);
    const h = vb.linear("h", { inFeatures: 2, outFeatures: 3, bias: false }) as DenseWeights;
    expect(h.dtype).to.equal("bf16");
    expect(h.bias).to.equal(undefined);
    expect(vb.f32("h.weight", [3, 2])).to.deep.equal(new Float32Array([1, 2, 3, 4, 5, 6]));
    expect(() => vb.linear("h", { inFeatures: 2, outFeatures: 3, bias: true })).to.throw(/missing tensor "h.bias"/);
    expect(vb.unused()).to.deep.equal([]);
  });
});

describe("synthetic checkpoint writer", () => {
  it("writes the tiny preset with tiny-a's exact tensor names, dtypes and shapes", () => {
    const out = path.join(tmp, "syn-tiny");
    const configJson = readJson(path.join(configsDir(), "tiny-a.json"));
    const generationJson = readJson(path.join(configsDir(), "generation_config.json"));
    const shardMap = readJson(path.join(configsDir(), "tiny-a.index.json")).weight_map as Record<string, string>;
    const r = writeSyntheticCheckpoint({ configJson, generationJson, out, seed: 7, dtype: "int4", shardSize: 0, shardMap });
    expect(r.files).to.deep.equal(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    const syn = Checkpoint.open(out);
    const ref = Checkpoint.open(TINY);
    expect(layoutOf(syn)).to.deep.equal(layoutOf(ref));
    // Same shard of every tensor, same byte size of every shard file.
    expect(readJson(path.join(out, "model.safetensors.index.json")).weight_map).to.deep.equal(shardMap);
    for (const f of r.files) {
      const sizeOf = (ck: Checkpoint) => ck.files.find((x) => x.path.endsWith(f))!;
      expect(sizeOf(syn).fileSize - sizeOf(syn).headerLength, f).to.equal(sizeOf(ref).fileSize - sizeOf(ref).headerLength);
    }
    expect(syn.indexTotalSize).to.equal(ref.indexTotalSize);
    expect(readJson(path.join(out, "quantize_config.json"))).to.deep.equal(readJson(path.join(TINY, "quantize_config.json")));

    // Read every tensor back through the VarBuilder the way the model does, and check sanity.
    const { vb, config } = VarBuilder.open(out);
    for (const m of modelLayout(config)) {
      if (m.kind === "tensor") {
        const x = vb.f32(m.name, m.shape);
        const mean = x.reduce((a, b) => a + b, 0) / x.length;
        expect(Math.abs(mean - m.init.mean), m.name).to.be.lessThan(0.05 + m.init.halfWidth / 4);
      } else {
        const w = vb.linear(m.name, { inFeatures: m.inFeatures, outFeatures: m.outFeatures, bias: m.bias, transposed: m.transposed });
        if (w.kind === "gptq") {
          expect(Array.from(w.gIdx)).to.deep.equal(Array.from({ length: m.inFeatures }, (_, i) => Math.floor(i / 128)));
          expect(new Set(w.qzeros)).to.deep.equal(new Set([0x77777777]));
        }
      }
    }
    expect(vb.unused()).to.deep.equal([]);
    // Same seed, same bytes; other seed, other bytes.
    const again = path.join(tmp, "syn-tiny-2");
    writeSyntheticCheckpoint({ configJson, generationJson, out: again, seed: 7, dtype: "int4", shardSize: 0, shardMap });
    const f = r.files[0];
    expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(again, f)))).to.equal(true);
    writeSyntheticCheckpoint({ configJson, generationJson, out: again, seed: 8, dtype: "int4", shardSize: 0, shardMap });
    expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(again, f)))).to.equal(false);
  });

  it("writes the float layouts: c_attn with bias, the other LLM linears without", () => {
    const configJson = readJson(path.join(configsDir(), "tiny-a.json"));
    const generationJson = readJson(path.join(configsDir(), "generation_config.json"));
    for (const dtype of ["f16", "bf16"] as const) {
      const out = path.join(tmp, `syn-${dtype}`);
      const r = writeSyntheticCheckpoint({ configJson, generationJson, out, seed: 1, dtype, shardSize: 1e9 });
      expect(r.files).to.deep.equal(["model.safetensors"]);
      expect(fs.existsSync(path.join(out, "quantize_config.json"))).to.equal(false);
      const { vb, config } = VarBuilder.open(out);
      expect(config.llm.quantization).to.equal(null);
      const ck = vb.checkpoint;
      expect(ck.info("transformer.h.0.attn.c_attn.weight").dtype).to.equal(dtype.toUpperCase());
      expect(ck.has("transformer.h.0.attn.c_attn.bias")).to.equal(true);
      for (const n of ["attn.c_proj", "mlp.w1", "mlp.w2", "mlp.c_proj"]) {
        expect(ck.has(`transformer.h.1.${n}.bias`), n).to.equal(false);
        expect(ck.has(`transformer.h.1.${n}.weight`), n).to.equal(true);
      }
      expect(ck.info("transformer.h.0.mlp.c_proj.weight").shape).to.deep.equal([256, 512]);
      const w1 = vb.linear("transformer.h.0.mlp.w1", { inFeatures: 256, outFeatures: 512, bias: false }) as DenseWeights;
      expect(w1.dtype).to.equal(dtype);
    }
  });

  it("the full layout matches the published Qwen-VL-Chat-Int4 index exactly", () => {
    const config = parseModelConfig(readJson(path.join(configsDir(), "qwen-vl-chat-int4.json")));
    const plans = tensorList(config, "int4");
    const index = readJson(path.join(configsDir(), "qwen-vl-chat-int4.index.json")) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    expect(plans.map((p) => p.name).sort()).to.deep.equal(Object.keys(index.weight_map).sort());
    const bytes = plans.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1) * (p.dtype === "I32" ? 4 : 2), 0);
    expect(bytes).to.equal(index.metadata.total_size);
    // The published split is reproducible from its weight_map; a greedy 2 GB split also gives 5 shards.
    const real = planShards(plans, DEFAULT_SHARD_SIZE, index.weight_map);
    expect(real.names).to.deep.equal(["00001", "00002", "00003", "00004", "00005"].map((k) => `model-${k}-of-00005.safetensors`));
    expect(planShards(plans, DEFAULT_SHARD_SIZE).names).to.have.length(5);
    expect(() => planShards(plans.slice(1), 1, index.weight_map)).to.throw(/0 tensors unmapped .* 1 mapped but absent/);
  });

  it("greedy sharding never exceeds the shard size unless a tensor alone does", () => {
    const config = parseModelConfig(readJson(path.join(configsDir(), "tiny-a.json")));
    const plans = tensorList(config, "int4");
    const { shards } = planShards(plans, 1_000_000);
    const bytes = (t: (typeof plans)[number]) => t.shape.reduce((a, b) => a * b, 1) * (t.dtype === "I32" ? 4 : 2);
    expect(shards.flat().map((t) => t.name)).to.deep.equal(plans.map((t) => t.name));
    for (const sh of shards) {
      const total = sh.reduce((s, t) => s + bytes(t), 0);
      expect(total <= 1_000_000 || sh.length === 1).to.equal(true);
    }
  });
});
