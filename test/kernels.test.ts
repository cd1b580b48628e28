// WASM kernels against the reference backend (the oracle), on random inputs of awkward sizes.
// f32 paths must agree to relative L2 < 1e-5; results must be bit-identical for 1 and N threads
// and for weights spread over several arenas.
import { expect } from "chai";
import { Tensor, matmulGelu, type Backend, type DenseWeights, type GptqWeights, type LinearWeights } from "../src/ops/backend.js";
import { WasmBackend } from "../src/ops/wasm/backend.js";
import { hostData } from "../src/ops/host.js";
import { ReferenceBackend } from "../reference/backend.js";
import { f32ToF16, f32ToBf16 } from "../src/io/fp16.js";

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(1234);
const randn = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
const tensor = (shape: number[], scale = 1): Tensor => new Tensor(shape, randn(shape.reduce((a, b) => a * b, 1), scale));

function relL2(a: Float32Array, b: Float32Array): number {
  expect(a.length).to.equal(b.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

function expectClose(got: Tensor, want: Tensor, tol = 1e-5): void {
  expect(got.shape).to.deep.equal(want.shape);
  expect(hostData(got).every(Number.isFinite), "all outputs finite").to.equal(true);
  expect(relL2(hostData(got), hostData(want))).to.be.below(tol);
}

function expectSame(a: Tensor, b: Tensor): void {
  expect(a.shape).to.deep.equal(b.shape);
  expect(Buffer.from(hostData(a).buffer, hostData(a).byteOffset, hostData(a).byteLength).equals(Buffer.from(hostData(b).buffer, hostData(b).byteOffset, hostData(b).byteLength))).to.equal(true);
}

function dense(N: number, K: number, dtype: "f32" | "f16" | "bf16", bias: boolean): LinearWeights {
  const w = randn(N * K, 0.5);
  const weight = dtype === "f32" ? w : Uint16Array.from(w, dtype === "f16" ? f32ToF16 : f32ToBf16);
  return { kind: "dense", inFeatures: K, outFeatures: N, weight, dtype, bias: bias ? randn(N) : undefined };
}

function gptq(N: number, K: number, gs = 128): GptqWeights {
  const G = Math.ceil(K / gs);
  return {
    kind: "gptq", inFeatures: K, outFeatures: N, bits: 4, groupSize: gs,
    qweight: Int32Array.from({ length: Math.ceil(K / 8) * N }, () => (rand() * 2 ** 32) | 0),
    qzeros: Int32Array.from({ length: G * Math.ceil(N / 8) }, () => (rand() * 2 ** 32) | 0),
    scales: Uint16Array.from({ length: G * N }, () => f32ToF16(0.002 + rand() * 0.02)),
    gIdx: Int32Array.from({ length: K }, (_, i) => Math.floor(i / gs)),
    bias: randn(N),
  };
}

/** erfc in f64: Maclaurin series of erf for |x| < 2.5, Lentz continued fraction beyond. */
function erfc(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax < 2.5) {
    let term = ax, sum = ax;
    for (let n = 1; n < 80; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    r = 1 - (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
    let f = 0;
    for (let n = 200; n >= 1; n--) f = n / 2 / (ax + f);
    r = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  }
  return x < 0 ? 2 - r : r;
}

describe("wasm kernels vs reference", function () {
  this.timeout(20000);
  const ref = new ReferenceBackend();
  let one: WasmBackend, many: WasmBackend, fast: WasmBackend, tinyArenas: WasmBackend, f32Decode: WasmBackend;
  let i16Decode: WasmBackend, f32Prefill: WasmBackend, plainI8: WasmBackend;
  before(() => {
    // The GPTQ kernels are fixed here (not the per-machine choice, test/autotune.test.ts): these
    // backends are compared bit for bit with each other.
    const i8 = { decodeQ4: "i8x3", prefillQ4: "i8x3" } as const;
    one = new WasmBackend({ threads: 1, ...i8 });
    many = new WasmBackend({ threads: 3, ...i8 }); // more threads than work units in places: uneven splits
    fast = new WasmBackend({ threads: 2, precision: "fast" });
    tinyArenas = new WasmBackend({ threads: 2, arenaBytes: 16 * 1024, ...i8 });
    f32Decode = new WasmBackend({ threads: 2, decodeQ4: "f32" });
    i16Decode = new WasmBackend({ threads: 2, decodeQ4: "i16x2" });
    f32Prefill = new WasmBackend({ threads: 2, prefillQ4: "f32" });
    plainI8 = new WasmBackend({ threads: 2, simd: "simd128", decodeQ4: "i8x3", prefillQ4: "i8x3" });
  });
  after(() => {
    for (const b of [one, many, fast, tinyArenas, f32Decode, i16Decode, f32Prefill, plainI8]) b.dispose();
  });

  /** Run `op` on the oracle and on 1 and 3 threads: close to the oracle, identical to each other. */
  function check(op: (b: Backend) => Tensor, tol = 1e-5): void {
    const want = op(ref);
    const a = op(one);
    expectClose(a, want, tol);
    expectSame(op(many), a);
  }

  const shapes: [number, number, number][] = [
    [1, 1, 1], [3, 7, 5], [7, 130, 13], [1, 4097, 9], [130, 33, 17], [6, 300, 64], [1, 3, 130], [1, 130, 4097],
    // The 16-bit decode GEMV's interleaved runs (4 per thread, 16 inputs per turn): 67 panels =
    // 4 runs of 8 pairs + 1 pair + the odd panel on 1 thread; 11, 11 and 11 pairs + the odd panel
    // (4 runs of 2 + 3) on 3 threads; K = 300 = 18·16 + 12 ends on a short turn. Same bits.
    [1, 300, 536],
  ];
  for (const dtype of ["f32", "f16", "bf16"] as const) {
    for (const [M, K, N] of shapes) {
      it(`matmul ${dtype} M=${M} K=${K} N=${N}`, () => {
        const w = dense(N, K, dtype, (M + N) % 2 === 0);
        const x = tensor([M, K]);
        const lr = ref.linear(w), l1 = one.linear(w), l3 = many.linear(w);
        const want = ref.matmul(x, lr);
        const got = one.matmul(x, l1);
        expectClose(got, want);
        expectSame(many.matmul(x, l3), got);
      });
    }
  }

  // The fused form runs GELU on the product in the arena: the same bits as matmul then gelu.
  for (const [dtype, M, K, N] of [["f16", 7, 130, 13], ["f32", 130, 33, 17], ["bf16", 1, 300, 64]] as const) {
    it(`matmulGelu ${dtype} M=${M} K=${K} N=${N}: gelu(matmul) bit for bit`, () => {
      const w = dense(N, K, dtype, true);
      const x = tensor([M, K], 3);
      const l1 = one.linear(w), l3 = many.linear(w), lr = ref.linear(w);
      const got = matmulGelu(one, x, l1);
      expectSame(got, one.gelu(one.matmul(x, l1)));
      expectSame(matmulGelu(many, x, l3), got);
      expectClose(got, matmulGelu(ref, x, lr));
      expect(got.shape).to.deep.equal([M, N]);
    });
  }

  it("matmul f16 M=1 widens subnormal and signed-zero halves exactly (decode GEMV and GEMM)", () => {
    // Every weight a subnormal half (exponent 0, mantissa 1..1023, either sign) or ±0: a widening
    // that flushed or mis-scaled them would be off by far more than the tolerance.
    const K = 37, N = 19;
    const weight = Uint16Array.from({ length: N * K }, (_, i) => ((i * 2654435761) >>> 7) & 0x83ff);
    const w: LinearWeights = { kind: "dense", inFeatures: K, outFeatures: N, weight, dtype: "f16" };
    for (const M of [1, 5]) {
      const x = tensor([M, K], M);
      const got = one.matmul(x, one.linear(w));
      expectClose(got, ref.matmul(x, ref.linear(w)));
      expectSame(many.matmul(x, many.linear(w)), got);
    }
  });

  // Subnormal halves are stored as 0 and listed apart (assembly/gemv16.ts): the GEMM writes them
  // back into its converted blocks (the same bits as without the list), the decode GEMV adds their
  // products after its panels (the same sum in another order). A few per panel among normal
  // weights, at the start and end of K, 16 columns at one k, in the odd last panel; shapes with 4
  // interleaved runs and short turns (as in the matmul shapes above).
  for (const [K, N] of [[300, 536], [37, 19], [4097, 9]] as const) {
    it(`matmul f16 K=${K} N=${N} with scattered subnormal halves: GEMM and decode GEMV`, () => {
      const w = dense(N, K, "f16", true);
      const h = (w as DenseWeights).weight as Uint16Array;
      let r = 12345;
      const next = (m: number): number => ((r = (r * 1103515245 + 12345) >>> 0) >>> 8) % m;
      for (let i = 0; i < (N * K) / 50; i++) h[next(N) * K + next(K)] = (next(2) << 15) | (1 + next(1023));
      for (const n of [0, 7, N - 1]) { h[n * K] = 0x0001; h[n * K + K - 1] = 0x83ff; }
      for (let n = 0; n < Math.min(N, 16); n++) h[n * K + 5] = 0x0200 | n;
      const x = tensor([5, K], 7);
      const l1 = one.linear(w), l3 = many.linear(w);
      const all = one.matmul(x, l1);
      expectClose(all, ref.matmul(x, ref.linear(w)));
      expectSame(many.matmul(x, l3), all);
      for (const m of [0, 3]) {
        const row = new Tensor([1, K], hostData(x).slice(m * K, (m + 1) * K));
        const gemv = one.matmul(row, l1);
        expectClose(gemv, new Tensor([1, N], hostData(all).slice(m * N, (m + 1) * N)), 1e-6);
        expectClose(gemv, ref.matmul(row, ref.linear(w)));
        expectSame(many.matmul(row, l3), gemv);
      }
    });
  }

  it("matmul f16 M=1 with inf/NaN weights gives inf/NaN like the reference", () => {
    // The decode GEMV cannot widen inf/NaN halves (assembly/gemv16.ts); such layers use the GEMM.
    const K = 7, N = 13;
    const weight = Uint16Array.from(randn(N * K), f32ToF16);
    weight[2 * K + 3] = 0x7c00; // +inf in output 2
    weight[5 * K + 1] = 0x7e00; // NaN in output 5
    const w: LinearWeights = { kind: "dense", inFeatures: K, outFeatures: N, weight, dtype: "f16" };
    const x = new Tensor([1, K], Float32Array.from({ length: K }, (_, i) => 0.5 + i));
    const want = hostData(ref.matmul(x, ref.linear(w))), got = hostData(one.matmul(x, one.linear(w)));
    expect(got[2]).to.equal(Infinity);
    expect(Number.isNaN(got[5])).to.equal(true);
    for (let n = 0; n < N; n++) if (n !== 2 && n !== 5) expect(Math.abs(got[n] - want[n])).to.be.at.most(1e-5 * (1 + Math.abs(want[n])));
  });

  it("released outputs are reused for later outputs of that length, with correct values", () => {
    const wd = dense(130, 7, "f32", true);
    const w = one.linear(wd);
    const x1 = tensor([3, 7]), x2 = tensor([3, 7]);
    const first = one.matmul(x1, w);
    one.release(first, first); // twice: listed once
    const a = one.matmul(x2, w), b = one.matmul(x2, w);
    expect(hostData(a) === hostData(first) || hostData(b) === hostData(first)).to.equal(true);
    expect(hostData(a)).to.not.equal(hostData(b));
    expectClose(a, ref.matmul(x2, ref.linear(wd)));
    expectSame(b, a);
    // Views and foreign arrays are ignored; an unreleased output is never handed out again.
    one.release(new Tensor([1, 390], hostData(a).subarray(0, 390)), tensor([3, 130]));
    const c = one.add(a, b);
    expect(hostData(c)).to.not.equal(hostData(a));
    expect(hostData(c)).to.not.equal(hostData(b));
  });

  it("matmul keeps leading dims: [2, 3, K] → [2, 3, N]", () => {
    const w = dense(5, 7, "f32", true);
    expect(one.matmul(tensor([2, 3, 7]), one.linear(w)).shape).to.deep.equal([2, 3, 5]);
  });

  const gptqShapes = [
    [1, 128, 8, 128], [3, 256, 24, 128], [7, 384, 40, 64], [130, 256, 16, 128], [1, 4096, 8, 128], [5, 64, 8, 32],
    [1, 2048, 8, 2048], [1, 24, 16, 8], [1, 1032, 40, 24], [1, 11008, 24, 128], [4, 1032, 16, 24], [2, 24, 8, 8],
    // K blocks of the record layout (4096 inputs): 3 blocks, the last shorter; a last block of 1 group.
    [3, 11008, 16, 128], [1, 4104, 16, 8], [5, 4104, 8, 8],
    // Decode GEMV's interleaved record streams (8 per thread): 66 quads = 8 runs of 8 + 2 in order on
    // 1 thread, 22 per thread = 8 runs of 2 + 6 on 3 threads; both must give the same bits.
    [1, 11008, 264, 128],
  ];
  for (const [M, K, N, gs] of gptqShapes) {
    it(`matmul gptq-int4 M=${M} K=${K} N=${N} group ${gs} (every GPTQ kernel)`, () => {
      const w = gptq(N, K, gs);
      const x = tensor([M, K]);
      const want = ref.matmul(x, ref.linear(w));
      const got = one.matmul(x, one.linear(w)); // "i8x3", M = 1 and M > 1
      expectClose(f32Prefill.matmul(x, f32Prefill.linear(w)), want);
      expectClose(got, want);
      expectSame(many.matmul(x, many.linear(w)), got);
      expectClose(f32Decode.matmul(x, f32Decode.linear(w)), want);
      expectClose(i16Decode.matmul(x, i16Decode.linear(w)), want);
      // Same integers through the SIMD128 emulation of the relaxed i8 dot; only the f32 multiply-
      // adds that combine the groups are unfused there (2e-6 apart after K = 11008's 86 groups).
      expectClose(plainI8.matmul(x, plainI8.linear(w)), want);
      expectClose(plainI8.matmul(x, plainI8.linear(w)), got, 5e-6);
      const f = fast.matmul(x, fast.linear(w));
      const err = relL2(hostData(f), hostData(want));
      expect(err).to.be.below(5e-5);
    });
  }

  it("gptq: i8x3 keeps f32 accuracy on LLM-like activations with ×50 outliers (decode and prefill)", () => {
    // An outlier sets its group's scale; 24-bit digits leave the other values ~2^-23 of it.
    const K = 4096, N = 64;
    const w = gptq(N, K, 128);
    const x = tensor([1, K]);
    for (let k = 0; k < K; k += 397) hostData(x)[k] *= 50;
    const want = ref.matmul(x, ref.linear(w));
    expectClose(one.matmul(x, one.linear(w)), want, 2e-6);
    expectClose(plainI8.matmul(x, plainI8.linear(w)), want, 2e-6);
    // An all-zero group and an all-zero input (scale 0) stay exact.
    const z = new Tensor([1, K], new Float32Array(K));
    hostData(z).set(hostData(x).subarray(128), 128);
    expectClose(one.matmul(z, one.linear(w)), ref.matmul(z, ref.linear(w)), 2e-6);
    // A group of subnormal-sized values (its scale underflows in f32) stays finite and ~exact.
    const tiny = new Tensor([1, K], hostData(x).slice());
    for (let k = 256; k < 384; k++) hostData(tiny)[k] = 1e-39 * (k % 3 - 1);
    expectClose(one.matmul(tiny, one.linear(w)), ref.matmul(tiny, ref.linear(w)), 2e-6);
    const zero = new Tensor([1, K], new Float32Array(K));
    expect(Array.from(hostData(one.matmul(zero, one.linear(w))))).to.deep.equal(Array.from(w.bias ?? new Float32Array(N)));
    const rows = tensor([5, K]);
    for (let k = 0; k < hostData(rows).length; k += 211) hostData(rows)[k] *= 50;
    expectClose(one.matmul(rows, one.linear(w)), ref.matmul(rows, ref.linear(w)), 2e-6);
  });
  it("gptq: i16x2 keeps f32 accuracy with ×50 outliers and zero groups, bit-identical for 1 and 3 threads", () => {
    // Two int16 levels carry ~31 bits of each group's maximum. K = 11008: three K blocks of the
    // record layout; N = 24: three pairs of column quads (the kernel's work unit), split unevenly;
    // N = 528: 66 pairs, the interleaved runs (8 per thread) = 8 runs of 8 + 2 in order on 1 thread,
    // 8 runs of 2 + 6 of 22 on 3 threads.
    const K = 11008;
    const single = new WasmBackend({ threads: 1, decodeQ4: "i16x2" });
    const triple = new WasmBackend({ threads: 3, decodeQ4: "i16x2" });
    try {
      for (const N of [24, 528]) {
        const w = gptq(N, K, 128);
        const x = tensor([1, K]);
        for (let k = 0; k < K; k += 397) hostData(x)[k] *= 50;
        hostData(x).fill(0, 4096, 4096 + 128); // an all-zero group (scale 0)
        const got = single.matmul(x, single.linear(w));
        expectClose(got, ref.matmul(x, ref.linear(w)), 2e-6);
        expectSame(triple.matmul(x, triple.linear(w)), got);
        expectSame(i16Decode.matmul(x, i16Decode.linear(w)), got);
        const zero = new Tensor([1, K], new Float32Array(K));
        expect(Array.from(hostData(single.matmul(zero, single.linear(w))))).to.deep.equal(Array.from(w.bias ?? new Float32Array(N)));
      }
    } finally {
      single.dispose();
      triple.dispose();
    }
  });
  it("decodeQ4 / prefillQ4: an unknown kernel name is an error", () => {
    expect(() => new WasmBackend({ threads: 1, decodeQ4: "i4" as never })).to.throw(/decodeQ4 must be one of i8x3, i16x2, f32 or "auto"/);
    expect(() => new WasmBackend({ threads: 1, prefillQ4: "i16x2" as never })).to.throw(/prefillQ4 must be one of i8x3, f32 or "auto"/);
  });

  it("gptq: K not a multiple of the group size is an error", () => {
    expect(() => one.linear(gptq(8, 200, 128))).to.throw(/not a multiple of groupSize/);
  });
  it("gptq: act-order g_idx is an error", () => {
    const w = gptq(8, 256, 128);
    w.gIdx[0] = 1;
    expect(() => one.linear(w)).to.throw(/g_idx/);
  });

  it("weights spread over several arenas give identical results", () => {
    const ws = [dense(40, 300, "f32", true), dense(24, 260, "f16", false), gptq(64, 512)];
    const x = [tensor([5, 300]), tensor([5, 260]), tensor([5, 512])];
    const ls = ws.map((w) => tinyArenas.linear(w));
    expect(tinyArenas.arenaCount).to.be.greaterThan(2);
    ws.forEach((w, i) => expectSame(tinyArenas.matmul(x[i], ls[i]), one.matmul(x[i], one.linear(w))));
  });

  for (const [R, C] of [[1, 1], [3, 7], [130, 4097]]) {
    it(`layerNorm / rmsNorm ${R}×${C}`, () => {
      const x = tensor([R, C], 3);
      const w = new Tensor([C], randn(C)), b = new Tensor([C], randn(C));
      check((be) => be.layerNorm(x, w, b, 1e-6));
      check((be) => be.rmsNorm(x, w, 1e-6));
    });
    it(`add / add broadcast / scaleRows ${R}×${C}`, () => {
      const a = tensor([R, C]), b = tensor([R, C]), row = tensor([C]);
      check((be) => be.add(a, b));
      check((be) => be.add(a, row));
      const s = new Tensor([R], randn(R));
      check((be) => be.scaleRows(a, s));
    });
    it(`gelu / swiglu ${R}×${C}`, () => {
      const a = tensor([R, C], 12), b = tensor([R, C], 12);
      check((be) => be.gelu(a));
      check((be) => be.swiglu(a, b));
    });
  }

  it("gelu is accurate per element, also for tiny negative outputs", () => {
    // x·½·erfc(−x/√2) in f64. The oracle's 1 + erf(x/√2) cancels for x < −5, so this test has its own.
    const xs = Float32Array.from({ length: 2001 }, (_, i) => -10 + i / 100);
    const got = hostData(one.gelu(new Tensor([xs.length], xs)));
    for (let i = 0; i < xs.length; i++) {
      const want = 0.5 * xs[i] * erfc(-xs[i] / Math.SQRT2);
      expect(Math.abs(got[i] - want), `gelu(${xs[i]})`).to.be.at.most(1e-5 * Math.abs(want));
    }
  });

  for (const [T, H, D] of [[1, 1, 2], [3, 2, 14], [7, 3, 130], [130, 2, 128]]) {
    it(`rope T=${T} H=${H} D=${D}`, () => {
      const x = tensor([T, H, D]);
      const cos = new Tensor([T, D], randn(T * D)), sin = new Tensor([T, D], randn(T * D));
      check((be) => be.rope(x, cos, sin));
    });
  }

  const attn: [string, number, number, number, number, boolean, number][] = [
    ["causal prefill", 7, 7, 3, 13, true, 0],
    ["causal prefill, several query blocks", 40, 40, 2, 16, true, 0],
    ["causal chunk after a cache, several blocks", 20, 50, 2, 24, true, 30],
    ["causal decode with cache", 1, 130, 2, 128, true, 129],
    ["causal chunk with cache", 3, 10, 2, 8, true, 7],
    ["bidirectional (ViT)", 130, 130, 2, 104, false, 0],
    ["cross (resampler)", 7, 33, 3, 5, false, 0],
    ["single key", 1, 1, 1, 1, true, 0],
    // One query row with D % 4 = 0 takes the decode kernel (attn_decode): awkward key counts,
    // keys hidden by the causal offset, column tails of 4 and 16.
    ["decode, one key", 1, 1, 1, 4, true, 0],
    ["decode, 3 keys", 1, 3, 3, 12, true, 2],
    ["decode, 7 of 130 keys visible", 1, 130, 2, 20, true, 6],
    ["decode, 16-column tail", 1, 7, 2, 132, true, 6],
    ["decode, bidirectional, many keys", 1, 4097, 2, 8, false, 0],
  ];
  for (const [name, Tq, Tk, H, D, causal, off] of attn) {
    it(`attention ${name}: Tq=${Tq} Tk=${Tk} H=${H} D=${D}`, () => {
      const q = tensor([Tq, H, D], 2), k = tensor([Tk, H, D], 2), v = tensor([Tk, H, D]);
      check((be) => be.attention(q, k, v, { scale: 1 / Math.sqrt(D), causal, queryOffset: off }));
    });
  }

  // Peaked rows (scores spread over hundreds): most softmax numerators fall below 2^-100 of the
  // row's largest and the kernels store them as zeros (assembly/attention.ts expShiftSum); the
  // result must still match the reference, which keeps every term in f64.
  for (const [name, Tq, Tk, H, D, off] of [["prefill", 37, 37, 3, 16, 0], ["decode", 1, 61, 5, 32, 60]] as const) {
    it(`attention ${name}, peaked rows: Tq=${Tq} Tk=${Tk} H=${H} D=${D}`, () => {
      const q = tensor([Tq, H, D], 6), k = tensor([Tk, H, D], 6), v = tensor([Tk, H, D]);
      check((be) => be.attention(q, k, v, { scale: 1 / Math.sqrt(D), causal: true, queryOffset: off }));
    });
  }

  it("shape errors name the op", () => {
    const l = one.linear(dense(4, 8, "f32", false));
    expect(() => one.matmul(tensor([2, 7]), l)).to.throw(/matmul/);
    expect(() => one.add(tensor([2, 3]), tensor([2, 2]))).to.throw(/add/);
    expect(() => one.rope(tensor([2, 3]), tensor([2, 3]), tensor([2, 3]))).to.throw(/rope/);
  });

  it("the plain SIMD128 build agrees with the relaxed one", () => {
    const plain = new WasmBackend({ threads: 1, simd: "simd128" });
    try {
      const w = dense(17, 130, "f32", true);
      const x = tensor([5, 130]);
      expectClose(plain.matmul(x, plain.linear(w)), ref.matmul(x, ref.linear(w)));
      const a = tensor([3, 130], 8);
      expectClose(plain.gelu(a), ref.gelu(a));
    } finally {
      plain.dispose();
    }
  });
});
