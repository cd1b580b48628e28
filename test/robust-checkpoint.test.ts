// Robustness of the checkpoint loader: a seeded mutation set over the tiny checkpoint (truncations,
// flipped header bytes, wrong dtypes/shapes/offsets in the JSON header, header lengths near 2^64,
// missing shards, broken index). Every mutation must either load (QwenVL.load reads and checks
// every tensor) or fail with a plain Error naming the file, and the tensor where one is at fault.
// Also: NaN/Inf planted in weights (refused at load, naming the tensor) and an activation overflow
// (refused at the first layer where it appears). Counts are printed and quoted in docs/security.md.
import { hostData } from "../src/ops/host.js";
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { QwenVL } from "../src/model/qwen-vl.js";
import { ReferenceBackend } from "../reference/backend.js";
import { Tensor, type Backend } from "../src/ops/backend.js";
import { firstNonFinite } from "../src/io/finite.js";
import { expectCleanOrOk, rng, tally, type Tally } from "./helpers-fuzz.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const TINY = path.join(ROOT, "test", "fixtures", "tiny-a", "checkpoint");
const SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
const INDEX = "model.safetensors.index.json";
const FILES = fs.readdirSync(TINY);

interface Parsed { headerLength: number; header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>; data: Buffer }

function parse(buf: Buffer): Parsed {
  const n = Number(buf.readBigUInt64LE(0));
  return { headerLength: n, header: JSON.parse(buf.subarray(8, 8 + n).toString("utf8")), data: buf.subarray(8 + n) };
}

/** A safetensors file from a header object (any JSON, valid or not) and a data area. */
function build(header: unknown, data: Buffer): Buffer {
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, "utf8"), data]);
}

let tmp: string;
let seq = 0;
const backend: Backend = new ReferenceBackend();

/**
 * A fresh checkpoint directory: the files in `replace` written with the given bytes (null = file
 * absent), every other file a symlink to the fixture (the loader follows links like files).
 */
function mutant(replace: Record<string, Buffer | string | null>): string {
  const dir = path.join(tmp, `m${seq++}`);
  fs.mkdirSync(dir);
  for (const f of FILES) {
    if (f in replace) {
      const v = replace[f];
      if (v !== null) fs.writeFileSync(path.join(dir, f), v);
    } else fs.symlinkSync(path.join(TINY, f), path.join(dir, f));
  }
  return dir;
}

async function tryLoad(t: Tally, label: string, dir: string, mustName: string[]): Promise<void> {
  await expectCleanOrOk(t, label, [dir, ...mustName], async () => {
    await QwenVL.load(dir, { backend });
  });
  fs.rmSync(dir, { recursive: true, force: true });
}

describe("robustness: checkpoint mutations", function () {
  this.timeout(60_000);
  const shardBytes = SHARDS.map((s) => fs.readFileSync(path.join(TINY, s)));
  const parsed = shardBytes.map(parse);
  const indexText = fs.readFileSync(path.join(TINY, INDEX), "utf8");
  const t = tally();
  const r = rng(20261202);

  // Running totals after each group, for the per-group line.
  const sections: { name: string; tried: number; errors: number; loads: number }[] = [];
  let last = { tried: 0, errors: 0, loads: 0 };
  afterEach(function () {
    const name = (this.currentTest?.title ?? "").split(" ")[0];
    sections.push({ name, tried: t.tried - last.tried, errors: t.errors - last.errors, loads: t.loads - last.loads });
    last = { tried: t.tried, errors: t.errors, loads: t.loads };
  });
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qwenvl-robust-ckpt-")); });
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
    console.log(`      checkpoint mutations: ${t.tried} tried, ${t.errors} clean errors, ${t.loads} loads`);
    const groups = sections.filter((x) => x.tried > 0).map((x) => `${x.name} ${x.tried}/${x.errors}/${x.loads}`);
    console.log(`      per group (tried/errors/loads): ${groups.join(", ")}`);
  });

  it("the unmodified copy loads", async () => {
    const dir = mutant({});
    await QwenVL.load(dir, { backend });
  });

  it("truncations at many offsets fail naming the shard", async () => {
    for (let s = 0; s < SHARDS.length; s++) {
      const b = shardBytes[s];
      const dataStart = 8 + parsed[s].headerLength;
      const offsets = new Set([0, 1, 4, 7, 8, 9, 16, dataStart >> 1, dataStart - 1, dataStart, dataStart + 1, b.length - 2, b.length - 1]);
      while (offsets.size < 45) offsets.add(r.int(0, b.length - 1));
      for (const off of offsets) {
        await tryLoad(t, `${SHARDS[s]} cut at ${off}`, mutant({ [SHARDS[s]]: b.subarray(0, off) }), [SHARDS[s]]);
      }
    }
    expect(t.bad, t.bad.join("\n")).to.deep.equal([]);
  });

  it("flipped header bytes (length prefix and JSON) load or fail naming the shard", async () => {
    for (let s = 0; s < SHARDS.length; s++) {
      const dataStart = 8 + parsed[s].headerLength;
      for (let k = 0; k < 60; k++) {
        const b = Buffer.from(shardBytes[s]);
        const at = k < 8 ? k : r.int(0, dataStart - 1);
        b[at] ^= r.int(1, 255);
        await tryLoad(t, `${SHARDS[s]} byte ${at} flipped`, mutant({ [SHARDS[s]]: b }), [SHARDS[s]]);
      }
    }
    expect(t.bad, t.bad.join("\n")).to.deep.equal([]);
  });

  it("header lengths near 2^64, past the file, and just short of it fail naming the shard", async () => {
    const s = 0, b = shardBytes[s];
    const lens = [2n ** 64n - 1n, 2n ** 64n - 8n, 2n ** 63n, 2n ** 53n + 1n, 2n ** 32n, 100_000_001n, BigInt(b.length), BigInt(b.length - 7), BigInt(b.length - 8), 0n, 1n, 2n, BigInt(parsed[s].headerLength - 8), BigInt(parsed[s].headerLength + 8)];
    for (const n of lens) {
      const m = Buffer.from(b);
      m.writeBigUInt64LE(n, 0);
      await tryLoad(t, `header length ${n}`, mutant({ [SHARDS[s]]: m }), [SHARDS[s]]);
    }
    expect(t.bad, t.bad.join("\n")).to.deep.equal([]);
  });

  it("wrong dtypes, shapes and data_offsets in the JSON header fail naming shard and tensor", async () => {
    const dtypes = ["F16", "BF16", "F32", "F64", "I8", "U8", "I32", "I64", "F8_E4M3", "f16", "", 3, null, ["F16"]];
    const edits: ((e: Record<string, unknown>, prev: { data_offsets: number[] } | undefined) => void)[] = [
      (e) => { e.dtype = r.pick(dtypes); },
      (e) => { delete e.dtype; },
      (e) => { e.shape = r.pick([[], [-1], [1.5], "256", null, [2 ** 53], [2 ** 31, 2 ** 31, 2 ** 31], [1e300]]); },
      (e) => { e.shape = [...(e.shape as number[]), 1]; }, // same size, one more dimension
      (e) => { e.shape = [...(e.shape as number[])].reverse(); }, // same size, transposed
      (e) => { const sh = e.shape as number[]; e.shape = [sh.reduce((a, x) => a * x, 1)]; }, // same size, flattened
      (e) => { delete e.shape; },
      (e, prev) => { const o = e.data_offsets as number[]; const d = prev ? 2 : 0; e.data_offsets = [o[0] - d, o[1] - d]; }, // overlap
      (e) => { const o = e.data_offsets as number[]; e.data_offsets = [o[0] + 1e6, o[1] + 1e6]; }, // out of range
      (e) => { const o = e.data_offsets as number[]; e.data_offsets = [-o[1], -o[0]]; }, // negative
      (e) => { const o = e.data_offsets as number[]; e.data_offsets = [o[1], o[0]]; }, // reversed
      (e) => { const o = e.data_offsets as number[]; e.data_offsets = [o[0], 2 ** 64]; },
      (e) => { const o = e.data_offsets as number[]; e.data_offsets = [o[0] + 0.5, o[1] + 0.5]; },
      (e) => { const o = e.data_offsets as number[]; e.data_offsets = [o[0], o[1], o[1]]; },
      (e) => { const o = e.data_offsets as number[]; e.data_offsets = [String(o[0]), String(o[1])]; },
      (e) => { delete e.data_offsets; },
      (e) => { const o = e.data_offsets as number[]; e.data_offsets = [o[0], o[1] - 2]; }, // size mismatch, a hole
    ];
    for (let s = 0; s < SHARDS.length; s++) {
      const names = Object.keys(parsed[s].header).filter((n) => n !== "__metadata__");
      for (let k = 0; k < 60; k++) {
        const h = structuredClone(parsed[s].header);
        const i = r.int(1, names.length - 1);
        const edit = edits[k % edits.length];
        edit(h[names[i]] as unknown as Record<string, unknown>, h[names[i - 1]]);
        await tryLoad(t, `${SHARDS[s]} header edit ${k % edits.length} on ${names[i]}`, mutant({ [SHARDS[s]]: build(h, parsed[s].data) }), [SHARDS[s], names[i]]);
      }
      // Whole-header shapes: not an object, entries that are not objects, bad metadata, a renamed or missing tensor.
      const bad: [string, unknown, string[]][] = [
        ["array header", [1, 2], []], ["string header", "x", []], ["null header", null, []],
        ["entry is a number", { ...parsed[s].header, [names[3]]: 7 }, [names[3]]],
        ["metadata not a map", { ...parsed[s].header, __metadata__: { format: 1 } }, []],
        ["metadata array", { ...parsed[s].header, __metadata__: ["pt"] }, []],
        ["tensor renamed", Object.fromEntries(Object.entries(parsed[s].header).map(([n, v]) => [n === names[2] ? n + "x" : n, v])), []],
        ["tensor removed", Object.fromEntries(Object.entries(parsed[s].header).filter(([n]) => n !== names[names.length - 1])), []],
        ["extra tensor", { ...parsed[s].header, extra: { dtype: "U8", shape: [0], data_offsets: [0, 0] } }, ["extra"]],
      ];
      for (const [label, h, mustName] of bad) {
        await tryLoad(t, `${SHARDS[s]} ${label}`, mutant({ [SHARDS[s]]: build(h, parsed[s].data) }), [SHARDS[s], ...mustName]);
      }
      // Header bytes that are not UTF-8, or not JSON.
      const raw = Buffer.from(shardBytes[s]);
      raw[9] = 0xff;
      await tryLoad(t, `${SHARDS[s]} invalid UTF-8`, mutant({ [SHARDS[s]]: raw }), [SHARDS[s]]);
    }
    expect(t.bad, t.bad.join("\n")).to.deep.equal([]);
  });

  it("missing shards, shards that are directories, and broken index files fail naming the file", async () => {
    for (const s of SHARDS) await tryLoad(t, `missing ${s}`, mutant({ [s]: null }), [s]);
    {
      const dir = mutant({ [SHARDS[1]]: null });
      fs.mkdirSync(path.join(dir, SHARDS[1]));
      await tryLoad(t, "shard is a directory", dir, [SHARDS[1]]);
    }
    const idx = JSON.parse(indexText);
    const names = Object.keys(idx.weight_map);
    const variants: [string, string, string[]][] = [
      ["empty", "", []], ["truncated", indexText.slice(0, indexText.length >> 1), []], ["not JSON", "{weight_map: 1}", []],
      ["array", "[]", []], ["null", "null", []], ["no weight_map", JSON.stringify({ metadata: idx.metadata }), []],
      ["weight_map array", JSON.stringify({ ...idx, weight_map: [SHARDS[0]] }), []],
      ["weight_map null", JSON.stringify({ ...idx, weight_map: null }), []],
      ["metadata string", JSON.stringify({ ...idx, metadata: "x" }), []],
      ["total_size string", JSON.stringify({ ...idx, metadata: { total_size: "big" } }), []],
      ["empty weight_map", JSON.stringify({ ...idx, weight_map: {} }), []],
    ];
    for (const [label, v, extra] of [
      ["../ shard", "../" + SHARDS[0], []], ["absolute shard", "/etc/passwd", []], ["empty shard name", "", []], ["dot", ".", []],
      ["dotdot", "..", []], ["missing shard", "model-00003-of-00002.safetensors", []], ["number", 3, []], ["null", null, []],
      ["other shard", SHARDS[1], []], ["index itself", INDEX, []], ["config", "config.json", []],
    ] as [string, unknown, string[]][]) {
      const k = r.int(0, names.length - 1);
      variants.push([`${label} for ${names[k]}`, JSON.stringify({ ...idx, weight_map: { ...idx.weight_map, [names[k]]: v } }), [...extra, names[k]]]);
    }
    {
      const k = r.int(0, names.length - 1);
      const wm = { ...idx.weight_map };
      delete wm[names[k]];
      variants.push([`${names[k]} not indexed`, JSON.stringify({ ...idx, weight_map: wm }), [names[k]]]);
      variants.push(["unknown tensor indexed", JSON.stringify({ ...idx, weight_map: { ...idx.weight_map, "transformer.h.9.x": SHARDS[0] } }), ["transformer.h.9.x"]]);
    }
    for (const [label, text, mustName] of variants) {
      await tryLoad(t, `index ${label}`, mutant({ [INDEX]: text }), mustName);
    }
    // With neither index nor shards, and a single-file layout with a bad file.
    await tryLoad(t, "no index", mutant({ [INDEX]: null, [SHARDS[0]]: null, [SHARDS[1]]: null }), [INDEX]);
    await tryLoad(t, "bad model.safetensors", mutant({ [INDEX]: null, [SHARDS[0]]: null, [SHARDS[1]]: null, "model.safetensors": Buffer.from("12345678") }), ["model.safetensors"]);
    // config.json: truncated, missing a field, wrong type.
    const cfgText = fs.readFileSync(path.join(TINY, "config.json"), "utf8");
    const cfg = JSON.parse(cfgText);
    for (const [label, text] of [
      ["truncated", cfgText.slice(0, 100)], ["no hidden_size", JSON.stringify({ ...cfg, hidden_size: undefined })],
      ["string layers", JSON.stringify({ ...cfg, num_hidden_layers: "2" })], ["huge vocab", JSON.stringify({ ...cfg, vocab_size: 2 ** 40 })],
      ["negative heads", JSON.stringify({ ...cfg, num_attention_heads: -2 })], ["visual null", JSON.stringify({ ...cfg, visual: null })],
    ]) {
      await tryLoad(t, `config.json ${label}`, mutant({ "config.json": text }), ["config.json"]);
    }
    expect(t.bad, t.bad.join("\n")).to.deep.equal([]);
  });

  it("flipped data bytes load, or fail naming the tensor that became NaN/Inf", async () => {
    for (let k = 0; k < 40; k++) {
      const s = k % SHARDS.length;
      const b = Buffer.from(shardBytes[s]);
      const at = r.int(8 + parsed[s].headerLength, b.length - 1);
      b[at] ^= r.pick([0x7c, 0x80, 0xff, 0x01, 0x7f]);
      await tryLoad(t, `${SHARDS[s]} data byte ${at} flipped`, mutant({ [SHARDS[s]]: b }), [SHARDS[s]]);
    }
    expect(t.bad, t.bad.join("\n")).to.deep.equal([]);
    expect(t.errors + t.loads).to.equal(t.tried);
  });
});

/** The shard bytes with the f16 elements `[start, start+n)` of tensor `name` set to `bits`. */
function plant(name: string, bits: number, start = 0, n = 1): Record<string, Buffer> {
  for (const s of SHARDS) {
    const b = Buffer.from(fs.readFileSync(path.join(TINY, s)));
    const p = parse(b);
    const e = p.header[name];
    if (!e) continue;
    expect(e.dtype).to.equal("F16");
    for (let i = start; i < start + n; i++) b.writeUInt16LE(bits, 8 + p.headerLength + e.data_offsets[0] + 2 * i);
    return { [s]: b };
  }
  throw new Error(`no tensor ${name}`);
}

describe("robustness: non-finite weights and activations", function () {
  this.timeout(60_000);
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qwenvl-robust-nan-")); });
  after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  for (const [name, bits, what] of [
    ["transformer.h.1.mlp.c_proj.scales", 0x7e00, "NaN"],
    ["transformer.wte.weight", 0x7c00, "Inf"],
    ["transformer.visual.transformer.resblocks.1.attn.in_proj.weight", 0xfc00, "-Inf"],
    ["transformer.visual.conv1.weight", 0x7c01, "NaN"],
    ["transformer.ln_f.weight", 0x7e00, "NaN"],
  ] as const) {
    it(`${what} planted in ${name} is refused at load, naming the tensor`, async () => {
      const dir = mutant(plant(name, bits, 5));
      let err: Error | undefined;
      try { await QwenVL.load(dir, { backend }); } catch (e) { err = e as Error; }
      expect(err?.message).to.match(new RegExp(`${name.replaceAll(".", "\\.")}" holds ${what.replace("+", "\\+")} at element 5`));
      expect(err?.message).to.include(dir);
    });
  }

  it("firstNonFinite finds the first NaN/Inf of every kind at any offset, length and position", () => {
    const r = rng(99);
    const naive16 = (h: Uint16Array, exp: number) => h.findIndex((x) => (x & exp) === exp);
    for (let k = 0; k < 400; k++) {
      const n = r.int(0, 40), off = r.int(0, 3);
      const kind = r.pick(["f32", "f16", "bf16", "f64"] as const);
      let data: Float32Array | Float64Array | Uint16Array;
      if (kind === "f32") data = new Float32Array(n + off).map(() => r.next() * 1e38 - 5e37).subarray(off);
      else if (kind === "f64") data = new Float64Array(n + off).map(() => r.next()).subarray(off);
      else data = new Uint16Array(n + off).map(() => r.int(0, 0xffff) & (kind === "f16" ? 0xfbff : 0xff7f)).subarray(off);
      const plants = r.int(0, 2);
      for (let j = 0; j < plants && n > 0; j++) {
        const at = r.int(0, n - 1);
        if (kind === "f32" || kind === "f64") data[at] = r.pick([NaN, Infinity, -Infinity]);
        else data[at] = r.pick(kind === "f16" ? [0x7c00, 0xfc00, 0x7e00, 0x7c01] : [0x7f80, 0xff80, 0x7fc0]);
      }
      const want = kind === "f32" || kind === "f64"
        ? Array.from(data as Float32Array).findIndex((x) => !Number.isFinite(x))
        : naive16(data as Uint16Array, kind === "f16" ? 0x7c00 : 0x7f80);
      expect(firstNonFinite(data, kind), `${kind} n=${n} off=${off}`).to.equal(want);
    }
  });

  it("an activation overflow is refused naming the first layer where it appears", async () => {
    // The MLP gate of the second layer returns huge but finite values (3e38, like an overflowing
    // fp16 model's activations would be after upcasting), so c_proj's sums overflow to Inf.
    const base = new ReferenceBackend();
    let calls = 0;
    const hot: Backend = Object.assign(Object.create(base) as Backend, {
      swiglu(a: Tensor, b: Tensor): Tensor {
        const out = base.swiglu(a, b);
        if (calls++ % 2 === 1) return new Tensor(out.shape, hostData(out).map((v: number) => (v >= 0 ? 3e38 : -3e38)));
        return out;
      },
    });
    const model = await QwenVL.load(TINY, { backend: hot });
    const cache = model.newCache();
    let err: unknown = null;
    await model.prefill([1, 2, 3, 4], cache).catch((e: unknown) => (err = e));
    expect(String((err as Error | null)?.message)).to.match(/^transformer\.h\.1 mlp output contains (-?Inf|NaN)/);
  });
});
