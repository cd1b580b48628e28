// PCG64 against numpy's random_raw, the exactly rounded f16 conversion, and the PCG64 checkpoint
// writer (tools/pcg-checkpoint.ts), whose bytes the numpy writer (tools/pcg_checkpoint.py) must
// reproduce on the GPU machine that makes the full-size goldens.
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { Pcg64, streamFor, streamKey } from "../tools/pcg64.js";
import { f16Levels, f16RNE, planFor, writePcgCheckpoint } from "../tools/pcg-checkpoint.js";
import { f32ToF16 } from "../src/io/fp16.js";

const hex = (x: bigint) => "0x" + x.toString(16);

describe("PCG64 (numpy-compatible)", () => {
  // Reference values: numpy 2.4.6, `g = PCG64(); st = g.state; st["state"] = {"state": S, "inc": I};
  // g.state = st; g.random_raw(n)` (numpy keeps random_raw's bits stable across versions).
  it("matches numpy random_raw for an explicit (state, inc)", () => {
    const p = new Pcg64(12345n, 67891n);
    expect([p.nextU64(), p.nextU64(), p.nextU64()].map(hex)).to.deep.equal(["0x85f684e8e8cd2d15", "0x411be0d5cae1f7a4", "0x737db32b43e568c8"]);
    expect(p.state()).to.deep.equal({ state: 45689636864371330794245490576240990722n, inc: 67891n });
  });

  it("wraps the 128-bit arithmetic (all-ones state and increment)", () => {
    const all = (1n << 128n) - 1n;
    const p = new Pcg64(all, all);
    expect([0, 1, 2, 3].map(() => hex(p.nextU64()))).to.deep.equal(["0xca64c3001557c2c1", "0xb4979fc13a9f569c", "0x4dcdd0b4f1c0e360", "0x946089d2dcc1bff4"]);
  });

  it("derives a tensor's stream from SHA-256 of seed/name, as pcg_checkpoint.py does", () => {
    expect(streamKey(0, "transformer.wte.weight")).to.deep.equal({
      state: 179370090919500315636844655075920506613n,
      inc: 63763164789302017346181011162748072361n,
    });
    const p = streamFor(0, "transformer.wte.weight");
    const u = new Uint32Array(2000);
    p.fillU32(u, 1000);
    const at = (i: number) => hex((BigInt(u[2 * i + 1]) << 32n) | BigInt(u[2 * i]));
    expect([at(0), at(1), at(2), at(999)]).to.deep.equal(["0x218a86dc3658cecc", "0xd28d4f8bbe746656", "0x187bdfcf5a7032f7", "0x2feff380d7d1dd8"]);
    expect(p.state().state).to.equal(207570188209286224413998956901234049837n);
  });

  it("bulk and one-at-a-time draws give the same stream", () => {
    const a = new Pcg64(987654321987654321n, 1n);
    const b = new Pcg64(987654321987654321n, 1n);
    const u = new Uint32Array(2 * 37);
    a.fillU32(u, 37);
    for (let i = 0; i < 37; i++) expect((BigInt(u[2 * i + 1]) << 32n) | BigInt(u[2 * i])).to.equal(b.nextU64());
  });
});

describe("f16RNE (double → binary16, one rounding)", () => {
  it("equals the f32 conversion on values that are f32 already", () => {
    const p = new Pcg64(7n, 9n);
    const u = new Uint32Array(2);
    const f = new Float32Array(1);
    for (let i = 0; i < 20000; i++) {
      p.fillU32(u, 1);
      // Uniform exponents over the f16 range and beyond (normal, subnormal, overflow).
      f[0] = (u[0] / 2 ** 32 - 0.5) * 2 ** ((u[1] % 50) - 30);
      expect(f16RNE(f[0]), `x = ${f[0]}`).to.equal(f32ToF16(f[0]));
    }
  });

  it("rounds once: just above a tie goes up where a detour through f32 would tie to even", () => {
    const x = 1 + 2 ** -11 + 2 ** -40; // f32 rounds this to the tie 1 + 2^-11
    expect(f16RNE(x)).to.equal(0x3c01);
    expect(f32ToF16(Math.fround(x))).to.equal(0x3c00);
    expect(f16RNE(1 + 2 ** -11)).to.equal(0x3c00); // an exact tie goes to even
    expect(f16RNE(2 ** -25 + 2 ** -40)).to.equal(0x0001); // subnormal just above half the unit
    expect(f16RNE(-0)).to.equal(0x8000);
    expect(f16RNE(65520)).to.equal(0x7c00);
    expect(f16RNE(65519.99)).to.equal(0x7bff);
  });

  it("a float fill's levels are ordered and symmetric for mean 0", () => {
    const t = f16Levels(0, 0.03);
    for (let k = 0; k < 65536; k++) expect(t[k] ^ 0x8000).to.equal(t[65535 - k]);
  });
});

describe("PCG64 checkpoint writer", () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pcg-ckpt-"));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("writes the tiny preset deterministically, with the bytes numpy's writer produces", () => {
    const plan = planFor("tiny");
    const a = writePcgCheckpoint(plan, path.join(tmp, "a"), 0);
    const b = writePcgCheckpoint(plan, path.join(tmp, "b"), 0);
    expect(a).to.deep.equal(b);
    // SHA-256 of `python3 tools/pcg_checkpoint.py PLAN.json DIR` (numpy 2.4.6) for the same plan.
    expect(a.map((s) => `${s.sha256} ${s.file}`)).to.deep.equal([
      "972e4790d3a345641ea0f8ceacab0766211f139cac7c3bbcb77b5e0842832854 model-00001-of-00002.safetensors",
      "bf2abacc40701e738092faf458c64ec4b424e5a418a5a289a3d9712e916b5eed model-00002-of-00002.safetensors",
    ]);
    const file = path.join(tmp, "a", a[0].file);
    expect(createHash("sha256").update(fs.readFileSync(file)).digest("hex")).to.equal(a[0].sha256);
    const c = writePcgCheckpoint(plan, path.join(tmp, "c"), 1);
    expect(c[0].sha256).to.not.equal(a[0].sha256); // the seed reaches every stream
  });
});
