// dequantizeGptq: checked by hand on tiny-a's raw tensors, and for g_idx handling on a permuted layer.
import { expect } from "chai";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Checkpoint } from "../src/io/checkpoint.js";
import { VarBuilder } from "../src/io/var-builder.js";
import { dequantizeGptq } from "../src/io/gptq.js";
import { f16ToF32, f32ToF16 } from "../src/io/fp16.js";
import type { GptqWeights } from "../src/ops/backend.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const TINY = path.join(ROOT, "test", "fixtures", "tiny-a", "checkpoint");

/** Deterministic small PRNG for the synthetic layer. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

describe("GPTQ dequantisation", () => {
  it("matches the AutoGPTQ formula on tiny-a's transformer.h.0.attn.c_attn, from raw ints", () => {
    const ck = Checkpoint.open(TINY);
    const name = "transformer.h.0.attn.c_attn";
    const qweight = ck.read(`${name}.qweight`).data as Int32Array; // [256/8, 768]
    const qzeros = ck.read(`${name}.qzeros`).data as Int32Array; // [2, 96]
    const scales = ck.read(`${name}.scales`).data as Uint16Array; // [2, 768]
    const gIdx = ck.read(`${name}.g_idx`).data as Int32Array;
    const K = 256;
    const N = 768;
    const vb = new VarBuilder(ck, { bits: 4, groupSize: 128, descAct: false, sym: true });
    const w = vb.linear(name, { inFeatures: K, outFeatures: N, bias: true }) as GptqWeights;
    const W = dequantizeGptq(w);
    expect(W.length).to.equal(N * K);
    // Entries in both groups, every nibble position of qweight (i % 8) and of qzeros (o % 8).
    const picks: [number, number][] = [
      [0, 0],
      [7, 1],
      [9, 767],
      [130, 42],
      [255, 500],
      [127, 383],
      [128, 384],
    ];
    let nonzero = 0;
    for (const [i, o] of picks) {
      const word = qweight[Math.floor(i / 8) * N + o];
      const q = (word >>> (4 * (i % 8))) & 0xf;
      const g = gIdx[i];
      expect(g).to.equal(Math.floor(i / 128));
      const zword = qzeros[g * (N / 8) + Math.floor(o / 8)];
      const z = (zword >>> (4 * (o % 8))) & 0xf;
      const s = f16ToF32(scales[g * N + o]);
      const want = s * (q - (z + 1));
      expect(W[o * K + i], `W[${o}, ${i}]`).to.equal(Math.fround(want));
      if (want !== 0) nonzero++;
    }
    expect(nonzero).to.be.greaterThan(3);
    ck.close();
  });

  it("follows g_idx: permuting input rows together with their group ids permutes W's columns", () => {
    const K = 64;
    const N = 16;
    const groupSize = 16;
    const G = K / groupSize;
    const next = rng(12345);
    // Unpacked nibbles q[i][o], then packed 8 per int32 along `in`.
    const q = Array.from({ length: K }, () => Array.from({ length: N }, () => next() & 15));
    const pack = (rows: number[][]): Int32Array => {
      const out = new Int32Array((K / 8) * N);
      for (let i = 0; i < K; i++) for (let o = 0; o < N; o++) out[(i >> 3) * N + o] |= rows[i][o] << (4 * (i % 8));
      return out;
    };
    const qzeros = Int32Array.from({ length: G * (N / 8) }, () => next() | 0);
    const scales = Uint16Array.from({ length: G * N }, () => f32ToF16(0.001 + (next() % 1000) / 1e5));
    const base: GptqWeights = {
      kind: "gptq",
      inFeatures: K,
      outFeatures: N,
      bits: 4,
      groupSize,
      qweight: pack(q),
      qzeros,
      scales,
      gIdx: Int32Array.from({ length: K }, (_, i) => Math.floor(i / groupSize)),
    };
    // desc_act order: row i of the permuted layer is row perm[i] of the base one.
    const perm = Array.from({ length: K }, (_, i) => i);
    for (let i = K - 1; i > 0; i--) {
      const j = next() % (i + 1);
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    const permuted: GptqWeights = {
      ...base,
      qweight: pack(perm.map((p) => q[p])),
      gIdx: Int32Array.from(perm, (p) => base.gIdx[p]),
    };
    const A = dequantizeGptq(base);
    const B = dequantizeGptq(permuted);
    let differs = 0;
    for (let o = 0; o < N; o++) {
      for (let i = 0; i < K; i++) {
        expect(B[o * K + i]).to.equal(A[o * K + perm[i]]);
        if (A[o * K + i] !== A[o * K + perm[i]]) differs++;
      }
    }
    expect(differs).to.be.greaterThan(K * N / 2); // the permutation really moved values
    // Ignoring g_idx (using i / groupSize) would give a different matrix.
    const wrong = dequantizeGptq({ ...permuted, gIdx: base.gIdx });
    expect(Array.from(wrong)).to.not.deep.equal(Array.from(B));
  });
});
