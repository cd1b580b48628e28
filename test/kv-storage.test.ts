// Long-lived backend storage (zeros with longLived, given back by release) and the KV cache that lives in it: attention reads
// keys and values in place, results are bit-identical to the staged path, storage is reused and
// given back.
import { expect } from "chai";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Tensor } from "../src/ops/backend.js";
import { WasmBackend } from "../src/ops/wasm/backend.js";
import { hostData } from "../src/ops/host.js";
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

  /** A long-lived [n] block (the KV cache's kind of storage) and its values. */
  const block = (n: number): { t: Tensor; d: Float32Array } => {
    const t = be.zeros([n], { longLived: true });
    return { t, d: hostData(t) };
  };

  it("allocates zeroed blocks, reuses freed ones, coalesces, and release ignores views", () => {
    const base = be.storageBytes;
    const a = block(1000), b = block(1000), c = block(3);
    expect(Array.from(a.d.subarray(0, 4))).to.deep.equal([0, 0, 0, 0]);
    b.d.fill(7);
    be.release(b.t);
    const b2 = block(1000);
    expect(b2.d.byteOffset).to.equal(b.d.byteOffset); // first fit: the freed block
    expect(b2.d.every((x) => x === 0)).to.equal(true); // zeroed again
    be.release(a.t, b2.t);
    const ab = block(2000); // a and b2 coalesced into one block
    expect(ab.d.byteOffset).to.equal(a.d.byteOffset);
    be.release(be.sliceRows(ab.t, 1, 1999)); // a view: ignored
    expect(be.storageBytes).to.be.above(base);
    be.release(ab.t, c.t);
    expect(be.storageBytes).to.equal(base);
    expect(() => be.zeros([0], { longLived: true })).to.throw(/positive/);
  });

  it("attention on keys/values in storage equals attention on staged copies, bit for bit", () => {
    const [T, H, D] = [37, 3, 16];
    const rnd = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 2);
    const k = block(T * H * D), v = block(T * H * D);
    k.d.set(rnd(T * H * D));
    v.d.set(rnd(T * H * D).reverse());
    for (const Tq of [1, 5]) {
      const q = new Tensor([Tq, H, D], rnd(Tq * H * D));
      const opts = { scale: 0.25, causal: true, queryOffset: T - Tq };
      const inPlace = be.attention(q, k.t.reshape([T, H, D]), v.t.reshape([T, H, D]), opts);
      const staged = be.attention(q, new Tensor([T, H, D], k.d.slice()), new Tensor([T, H, D], v.d.slice()), opts);
      expect(same(hostData(inPlace), hostData(staged)), `Tq = ${Tq}`).to.equal(true);
      // Keys in storage, values not: staged, still right.
      const mixed = be.attention(q, k.t.reshape([T, H, D]), new Tensor([T, H, D], v.d.slice()), opts);
      expect(same(hostData(mixed), hostData(staged))).to.equal(true);
    }
    be.release(k.t, v.t);
  });

  it("prefill + decode through a cache in storage, grown twice, match a plain-array cache exactly", async () => {
    const ids = Array.from(readCase(path.join(TINY, "llm-text.msgpack")).tensors.input_ids.data);
    const base = be.storageBytes;
    // The same backend, except that long-lived tensors are plain arrays (attention stages them).
    const plainBackend: WasmBackend = Object.create(be, { zeros: { value: (shape: readonly number[]) => be.zeros(shape) } });
    const plain = new KvCache(model.config.llm.numLayers, model.config.llm.numHeads, model.config.llm.kvChannels, ids.length + 8, model.maxContext, plainBackend);
    expect(be.storageBytes).to.equal(base);
    const stored = model.newCache(4); // too small: grows during prefill and again while decoding
    expect(be.storageBytes).to.be.above(base);
    const want = await model.prefill(ids, plain), got = await model.prefill(ids, stored);
    expect(same(got, want)).to.equal(true);
    let next = 7;
    for (let i = 0; i < 80; i++) {
      const w = await model.decodeStep(next, plain), g = await model.decodeStep(next, stored);
      expect(same(g, w), `step ${i}`).to.equal(true);
      next = (next * 31 + i) % 1000;
    }
    expect(stored.capacity).to.be.above(ids.length + 64);
    stored.dispose();
    plain.dispose();
    expect(be.storageBytes).to.equal(base);
    let err: unknown;
    await model.decodeStep(1, stored).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/after dispose/);
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
