// Backend storage (allocStorage / freeStorage) and the KV cache that lives in it: attention reads
// keys and values in place, results are bit-identical to the staged path, storage is reused and
// given back.
import { expect } from "chai";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Tensor } from "../src/ops/backend.js";
import { WasmBackend } from "../src/ops/wasm/backend.js";
import { QwenVL } from "../src/model/qwen-vl.js";
import { KvCache } from "../src/model/qwen.js";
import { generate, generateStream } from "../src/generate/generate.js";
import { readCase } from "../src/conformance/compare.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const TINY = path.join(ROOT, "test", "fixtures", "tiny-a");

const same = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe("backend storage and the KV cache in it", function () {
  this.timeout(60_000);
  let be: WasmBackend;
  let model: QwenVL;
  before(async () => {
    be = new WasmBackend({ threads: 2 });
    model = await QwenVL.load(path.join(TINY, "checkpoint"), { backend: be });
  });
  after(() => be.dispose());

  it("allocates zeroed blocks, reuses freed ones, coalesces, and refuses bad frees", () => {
    const base = be.storageBytes;
    const a = be.allocStorage(1000), b = be.allocStorage(1000), c = be.allocStorage(3);
    expect(Array.from(a.subarray(0, 4))).to.deep.equal([0, 0, 0, 0]);
    b.fill(7);
    be.freeStorage(b);
    const b2 = be.allocStorage(1000);
    expect(b2.byteOffset).to.equal(b.byteOffset); // first fit: the freed block
    expect(b2.every((x) => x === 0)).to.equal(true); // zeroed again
    be.freeStorage(a);
    be.freeStorage(b2);
    const ab = be.allocStorage(2000); // a and b2 coalesced into one block
    expect(ab.byteOffset).to.equal(a.byteOffset);
    expect(() => be.freeStorage(ab.subarray(1))).to.throw(/not a live buffer/);
    be.freeStorage(ab);
    expect(() => be.freeStorage(ab)).to.throw(/not a live buffer/);
    be.freeStorage(c);
    expect(be.storageBytes).to.equal(base);
    expect(() => be.allocStorage(0)).to.throw(/positive/);
  });

  it("attention on keys/values in storage equals attention on staged copies, bit for bit", () => {
    const [T, H, D] = [37, 3, 16];
    const rnd = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 2);
    const k = be.allocStorage(T * H * D), v = be.allocStorage(T * H * D);
    k.set(rnd(T * H * D));
    v.set(rnd(T * H * D).reverse());
    for (const Tq of [1, 5]) {
      const q = new Tensor([Tq, H, D], rnd(Tq * H * D));
      const opts = { scale: 0.25, causal: true, queryOffset: T - Tq };
      const inPlace = be.attention(q, new Tensor([T, H, D], k), new Tensor([T, H, D], v), opts);
      const staged = be.attention(q, new Tensor([T, H, D], k.slice()), new Tensor([T, H, D], v.slice()), opts);
      expect(same(inPlace.data, staged.data), `Tq = ${Tq}`).to.equal(true);
      // Keys in storage, values not: staged, still right.
      const mixed = be.attention(q, new Tensor([T, H, D], k), new Tensor([T, H, D], v.slice()), opts);
      expect(same(mixed.data, staged.data)).to.equal(true);
    }
    be.freeStorage(k);
    be.freeStorage(v);
  });

  it("prefill + decode through a cache in storage, grown twice, match a plain-array cache exactly", () => {
    const ids = Array.from(readCase(path.join(TINY, "llm-text.msgpack")).tensors.input_ids.data);
    const base = be.storageBytes;
    const plain = new KvCache(model.config.llm.numLayers, model.config.llm.numHeads, model.config.llm.kvChannels, ids.length + 8);
    const stored = model.newCache(4); // too small: grows during prefill and again while decoding
    expect(be.storageBytes).to.be.above(base);
    const want = model.prefill(ids, plain).data, got = model.prefill(ids, stored).data;
    expect(same(got, want)).to.equal(true);
    let next = 7;
    for (let i = 0; i < 80; i++) {
      const w = model.decodeStep(next, plain), g = model.decodeStep(next, stored);
      expect(same(g, w), `step ${i}`).to.equal(true);
      next = (next * 31 + i) % 1000;
    }
    expect(stored.capacity).to.be.above(ids.length + 64);
    stored.dispose();
    expect(be.storageBytes).to.equal(base);
    expect(() => model.decodeStep(1, stored)).to.throw(/after dispose/);
  });

  it("generation gives its cache's storage back, also when stopped early", async () => {
    const base = be.storageBytes;
    const prompt = [5, 17, 300, 41];
    const r = await generate(model, prompt, { maxNewTokens: 6 });
    expect(r.ids.length).to.be.at.most(6);
    expect(be.storageBytes).to.equal(base);
    const it = generateStream(model, prompt, { maxNewTokens: 50 });
    await it.next();
    expect(be.storageBytes).to.be.above(base); // the live cache
    await it.return(undefined as never); // the consumer stops after one token
    expect(be.storageBytes).to.equal(base);
  });
});
