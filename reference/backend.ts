// The reference backend: plain TypeScript, one loop nest per op, no tricks.
//
// It is the oracle: every kernel of every other backend is tested against it, and the model graph
// run on it must reproduce the PyTorch goldens. Sums are accumulated in JavaScript numbers (f64) and
// rounded to f32 once per output, so its own rounding error is far below any kernel's.
import { Tensor } from "../src/ops/backend.js";
import type { AttentionOptions, Backend, Linear, LinearWeights } from "../src/ops/backend.js";
import { HostBackendBase, hostData } from "../src/ops/host.js";
import { bf16ArrayToF32, f16ArrayToF32 } from "../src/io/fp16.js";
import { dequantizeGptq } from "../src/io/gptq.js";

/** A linear layer as the oracle keeps it: W as f32 [out, in], bias f32 [out] or none. */
interface ReferenceLinear extends Linear {
  readonly weight: Float32Array;
  readonly bias?: Float32Array;
}

function denseToF32(w: LinearWeights & { kind: "dense" }): Float32Array {
  if (w.weight instanceof Float32Array) return w.weight;
  return w.dtype === "bf16" ? bf16ArrayToF32(w.weight) : f16ArrayToF32(w.weight);
}

function sameShape(a: Tensor, b: Tensor, op: string): void {
  if (a.size !== b.size) {
    throw new Error(`${op}: shapes [${a.shape}] and [${b.shape}] differ`);
  }
}

function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is only 1e-7 accurate; use the series / continued fraction in f64
  // so the oracle is exact to f32 rounding.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  // erfc continued fraction (Lentz) for the tails.
  let f = ax;
  let C = ax;
  let D = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    D = ax + an * D;
    D = 1 / D;
    C = ax + an / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return x < 0 ? erfc - 1 : 1 - erfc;
}

export class ReferenceBackend extends HostBackendBase implements Backend {
  readonly name = "reference";

  /** Nothing to recycle: outputs are plain garbage-collected arrays. */
  release(): void {}

  linear(w: LinearWeights): Linear {
    const weight = w.kind === "gptq" ? dequantizeGptq(w) : denseToF32(w);
    if (weight.length !== w.inFeatures * w.outFeatures) {
      throw new Error(`linear: weight has ${weight.length} values, expected ${w.outFeatures}×${w.inFeatures}`);
    }
    if (w.bias && w.bias.length !== w.outFeatures) {
      throw new Error(`linear: bias has ${w.bias.length} values, expected ${w.outFeatures}`);
    }
    const lin: ReferenceLinear = { inFeatures: w.inFeatures, outFeatures: w.outFeatures, weight, bias: w.bias };
    return lin;
  }

  matmul(x: Tensor, w: Linear): Tensor {
    const xd = hostData(x);
    const { weight, bias, inFeatures: K, outFeatures: N } = w as ReferenceLinear;
    if (x.cols !== K) throw new Error(`matmul: input has ${x.cols} columns, layer expects ${K}`);
    const M = x.rows;
    const xs = xd;
    const out = new Float32Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = bias ? bias[n] : 0;
        for (let k = 0; k < K; k++) acc += xs[m * K + k] * weight[n * K + k];
        out[m * N + n] = acc;
      }
    }
    return new Tensor([...x.shape.slice(0, -1), N], out);
  }

  layerNorm(x: Tensor, weightT: Tensor, biasT: Tensor, eps: number): Tensor {
    const xd = hostData(x);
    const weight = hostData(weightT), bias = hostData(biasT);
    const D = x.cols;
    const out = new Float32Array(xd.length);
    for (let r = 0; r < x.rows; r++) {
      let mean = 0;
      for (let i = 0; i < D; i++) mean += xd[r * D + i];
      mean /= D;
      let v = 0;
      for (let i = 0; i < D; i++) v += (xd[r * D + i] - mean) ** 2;
      const inv = 1 / Math.sqrt(v / D + eps);
      for (let i = 0; i < D; i++) out[r * D + i] = (xd[r * D + i] - mean) * inv * weight[i] + bias[i];
    }
    return new Tensor(x.shape, out);
  }

  rmsNorm(x: Tensor, weightT: Tensor, eps: number): Tensor {
    const xd = hostData(x);
    const weight = hostData(weightT);
    const D = x.cols;
    const out = new Float32Array(xd.length);
    for (let r = 0; r < x.rows; r++) {
      let ss = 0;
      for (let i = 0; i < D; i++) ss += xd[r * D + i] ** 2;
      const inv = 1 / Math.sqrt(ss / D + eps);
      for (let i = 0; i < D; i++) out[r * D + i] = xd[r * D + i] * inv * weight[i];
    }
    return new Tensor(x.shape, out);
  }

  add(a: Tensor, b: Tensor): Tensor {
    const ad = hostData(a);
    const bd = hostData(b);
    const out = new Float32Array(ad.length);
    if (bd.length === a.cols && ad.length !== bd.length) {
      for (let i = 0; i < out.length; i++) out[i] = ad[i] + bd[i % a.cols];
    } else {
      sameShape(a, b, "add");
      for (let i = 0; i < out.length; i++) out[i] = ad[i] + bd[i];
    }
    return new Tensor(a.shape, out);
  }

  scaleRows(a: Tensor, sT: Tensor): Tensor {
    const ad = hostData(a);
    const s = hostData(sT);
    if (s.length !== a.rows) throw new Error(`scaleRows: ${s.length} scales for ${a.rows} rows`);
    const out = new Float32Array(ad.length);
    for (let i = 0; i < out.length; i++) out[i] = ad[i] * s[Math.floor(i / a.cols)];
    return new Tensor(a.shape, out);
  }

  gelu(x: Tensor): Tensor {
    const xd = hostData(x);
    const out = new Float32Array(xd.length);
    for (let i = 0; i < out.length; i++) out[i] = 0.5 * xd[i] * (1 + erf(xd[i] / Math.SQRT2));
    return new Tensor(x.shape, out);
  }

  swiglu(a: Tensor, b: Tensor): Tensor {
    const ad = hostData(a);
    const bd = hostData(b);
    sameShape(a, b, "swiglu");
    const out = new Float32Array(ad.length);
    for (let i = 0; i < out.length; i++) out[i] = ad[i] * (bd[i] / (1 + Math.exp(-bd[i])));
    return new Tensor(a.shape, out);
  }

  rope(x: Tensor, cosT: Tensor, sinT: Tensor): Tensor {
    const xd = hostData(x);
    const cos = hostData(cosT), sin = hostData(sinT);
    const [T, H, D] = x.shape;
    if (x.shape.length !== 3 || cos.length !== T * D || sin.length !== T * D) {
      throw new Error(`rope: x [${x.shape}] needs cos/sin of ${T}×${D}, got ${cos.length}/${sin.length}`);
    }
    const half = D / 2;
    const out = new Float32Array(xd.length);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const base = (t * H + h) * D;
        for (let i = 0; i < D; i++) {
          const rot = i < half ? -xd[base + i + half] : xd[base + i - half];
          out[base + i] = xd[base + i] * cos[t * D + i] + rot * sin[t * D + i];
        }
      }
    }
    return new Tensor(x.shape, out);
  }

  attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
    const qd = hostData(q);
    const kd = hostData(k);
    const vd = hostData(v);
    const [Tq, H, D] = q.shape;
    const Tk = k.shape[0];
    if (k.shape[1] !== H || k.shape[2] !== D || v.shape[0] !== Tk || v.shape[1] !== H || v.shape[2] !== D) {
      throw new Error(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not agree`);
    }
    const offset = options.queryOffset ?? 0;
    const [qs, ks, vs] = [qd, kd, vd];
    const out = new Float32Array(Tq * H * D);
    const scores = new Float64Array(Tk);
    for (let t = 0; t < Tq; t++) {
      const visible = options.causal ? Math.min(Tk, offset + t + 1) : Tk;
      for (let h = 0; h < H; h++) {
        let max = -Infinity;
        for (let s = 0; s < visible; s++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qs[(t * H + h) * D + d] * ks[(s * H + h) * D + d];
          scores[s] = dot * options.scale;
          if (scores[s] > max) max = scores[s];
        }
        let sum = 0;
        for (let s = 0; s < visible; s++) {
          scores[s] = Math.exp(scores[s] - max);
          sum += scores[s];
        }
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let s = 0; s < visible; s++) acc += scores[s] * vs[(s * H + h) * D + d];
          out[(t * H + h) * D + d] = acc / sum;
        }
      }
    }
    return new Tensor(q.shape, out);
  }
}
