// Checkpoint sources: a checkpoint held in memory (MemorySource) or fetched (fetchCheckpoint)
// loads the same tensors as the directory, and fails with the directory's messages.
import { expect } from "chai";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Checkpoint } from "../src/io/checkpoint.js";
import { MemorySource } from "../src/io/source.js";
import { fetchCheckpoint, type FetchFn } from "../src/io/fetch.js";
import { QwenVL } from "../src/model/qwen-vl.js";
import { QwenTokenizer } from "../src/tokenizer/tokenizer.js";
import { createBackend, disposeBackend } from "../src/ops/select.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TINY = ROOT + "test/fixtures/tiny-a/checkpoint";

function filesOf(dir: string): Map<string, Uint8Array> {
  return new Map(readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]));
}

/** The error `f` throws, as text. */
function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error");
}

/** A fetch over a directory: 404 for absent files, bodies streamed in two chunks. */
function dirFetch(dir: string, requested: string[] = []): FetchFn {
  return async (url) => {
    const name = decodeURIComponent(new URL(url).pathname.split("/").pop()!);
    requested.push(name);
    let bytes: Uint8Array | null = null;
    try {
      bytes = new Uint8Array(readFileSync(join(dir, name)));
    } catch {
      /* 404 */
    }
    const b = bytes;
    const chunks = b ? [b.subarray(0, b.length >> 1), b.subarray(b.length >> 1)] : [];
    return {
      ok: b !== null, status: b ? 200 : 404,
      headers: { get: (h: string) => (h.toLowerCase() === "content-length" && b ? String(b.length) : null) },
      body: { getReader: () => ({ read: async () => (chunks.length ? { done: false, value: chunks.shift()! } : { done: true }) }) },
      arrayBuffer: async () => (b ? b.slice().buffer : new ArrayBuffer(0)),
    };
  };
}

describe("checkpoint sources", () => {
  let tmp: string;
  before(() => (tmp = mkdtempSync(join(tmpdir(), "qwenvl-source-"))));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it("a MemorySource of the files reads every tensor byte for byte like the directory", () => {
    const disk = Checkpoint.open(TINY);
    const mem = Checkpoint.fromSource(new MemorySource(filesOf(TINY), "mem:tiny"));
    expect(mem.layout).to.equal("sharded");
    expect(mem.names().sort()).to.deep.equal(disk.names().sort());
    expect(mem.totalBytes).to.equal(disk.totalBytes);
    for (const n of disk.names()) {
      const a = disk.read(n).data, b = mem.read(n).data;
      expect(b.constructor).to.equal(a.constructor);
      expect(Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength)), n).to.equal(true);
    }
    expect(mem.info(disk.names()[0]).file).to.match(/^mem:tiny\/model-0000[12]-of-00002\.safetensors$/);
    disk.close();
    mem.close();
  });

  it("fails with the directory's messages (paths read as the source's label)", () => {
    const shard = "model-00002-of-00002.safetensors";
    const cases: [string, (dir: string) => void][] = [
      ["missing shard", (d) => rmSync(join(d, shard))],
      ["truncated shard", (d) => truncateSync(join(d, shard), 1000)],
      ["index not JSON", (d) => writeFileSync(join(d, "model.safetensors.index.json"), "{")],
      ["header length past the end", (d) => writeFileSync(join(d, shard), Buffer.from([255, 255, 255, 0, 0, 0, 0, 0, 1]))],
      ["no index and no model.safetensors", (d) => rmSync(join(d, "model.safetensors.index.json"))],
    ];
    for (const [what, mutate] of cases) {
      const dir = join(tmp, what.replace(/\W+/g, "-"));
      cpSync(TINY, dir, { recursive: true });
      mutate(dir);
      const fromDisk = errorOf(() => Checkpoint.open(dir));
      const fromMemory = errorOf(() => Checkpoint.fromSource(new MemorySource(filesOf(dir), dir)));
      expect(fromMemory, what).to.equal(fromDisk);
    }
  });

  it("refuses file names with path syntax and non-byte contents", () => {
    expect(() => new MemorySource({ "a/b.json": new Uint8Array(1) })).to.throw(/"a\/b.json" must be a plain file name/);
    expect(() => new MemorySource({ "x.json": "text" as unknown as Uint8Array })).to.throw(/"x.json" must be an ArrayBuffer or a Uint8Array/);
  });

  it("fetchCheckpoint gets config, index and every shard (optional files by 404), with progress", async () => {
    const requested: string[] = [];
    const progress: [number, number][] = [];
    const src = await fetchCheckpoint("http://h/ckpt", { fetch: dirFetch(TINY, requested), onProgress: (d, t) => progress.push([d, t]) });
    expect(src.label).to.equal("http://h/ckpt/");
    // config.json carries quantization_config: quantize_config.json is not asked for.
    expect(requested).to.deep.equal(["config.json", "generation_config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    expect(src.list().sort()).to.deep.equal(["config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]);
    const shardBytes = readFileSync(join(TINY, "model-00001-of-00002.safetensors")).length + readFileSync(join(TINY, "model-00002-of-00002.safetensors")).length;
    expect(progress.at(-1)).to.deep.equal([shardBytes, shardBytes]);
    expect(Checkpoint.fromSource(src).names().length).to.equal(Checkpoint.open(TINY).names().length);
    const missing = await fetchCheckpoint("http://h/none/", { fetch: dirFetch(join(tmp, "nothing-here")) }).catch((e: Error) => e.message);
    expect(missing).to.equal("checkpoint http://h/none/: GET http://h/none/config.json answered 404");
  });

  it("QwenVL.loadFrom(MemorySource) computes what QwenVL.load(dir) computes", async () => {
    const backend = await createBackend({ name: "reference" });
    try {
      const a = await QwenVL.load(TINY, { backend });
      const b = await QwenVL.loadFrom(new MemorySource(filesOf(TINY), "mem:tiny"), { backend });
      expect(b.dir).to.equal("mem:tiny");
      expect(b.generation).to.deep.equal(a.generation);
      const ids = [5, 17, 300, 1024, 7];
      const la = await a.prefill(ids, a.newCache(8));
      const lb = await b.prefill(ids, b.newCache(8));
      expect(Array.from(lb)).to.deep.equal(Array.from(la));
    } finally {
      await disposeBackend(backend);
    }
  });

  it("QwenTokenizer.fromVocabBytes equals QwenTokenizer.load; refuses bytes that are not UTF-8", async () => {
    const a = QwenTokenizer.load();
    const b = await QwenTokenizer.fromVocabBytes(new Uint8Array(readFileSync(ROOT + "assets/qwen.tiktoken")), "qwen.tiktoken");
    const text = "Picture 1: <img>demo.jpeg</img>\n图里有什么？ <ref>the dog</ref>";
    expect(b.encode(text)).to.deep.equal(a.encode(text));
    expect(b.nVocab).to.equal(a.nVocab);
    a.dispose();
    b.dispose();
    let err = "";
    await QwenTokenizer.fromVocabBytes(new Uint8Array([0xff, 0xfe]), "bad.tiktoken").catch((e: Error) => (err = e.message));
    expect(err).to.equal("QwenTokenizer: ranks file bad.tiktoken is not valid UTF-8");
  });
});
