// PCG64 exactly as numpy's `numpy.random.PCG64` (O'Neill's pcg64: 128-bit LCG state, XSL-RR
// 64-bit output), so that a stream drawn here equals `PCG64().random_raw(n)` in Python bit for
// bit. numpy's own seeding (SeedSequence) is not reproduced: a stream is defined by its explicit
// 128-bit (state, inc) pair, which Python sets through `bit_generator.state` (tools/pcg_checkpoint.py).
//
// Arithmetic: the state is eight 16-bit limbs held in doubles; each limb product is < 2^32 and a
// column sum of at most eight products plus carry and increment stays < 2^36, exact in a double,
// so the 128-bit multiply-add needs neither BigInt (too slow for the ~1.2·10^9 steps of a full
// checkpoint) nor 64-bit integers.
//
// API
//   new Pcg64(state: bigint, inc: bigint)      the raw LCG state and increment (each mod 2^128)
//   pcg.fillU32(out: Uint32Array, n64: number) n64 outputs, each as (low u32, high u32) = little-endian u64
//   pcg.nextU64(): bigint                      one output (slow path, for tests)
//   pcg.state(): { state: bigint; inc: bigint }
//   streamFor(seed: number, name: string): Pcg64   the per-tensor stream (SHA-256 of "seed/name")
import { createHash } from "node:crypto";

/** numpy pcg64.h PCG_DEFAULT_MULTIPLIER_128 (= 47026247687942121848144207491837523525). */
export const PCG64_MULTIPLIER = 0x2360ed051fc65da44385df649fccf645n;

const MASK128 = (1n << 128n) - 1n;

function toLimbs(x: bigint): number[] {
  const v = ((x % (1n << 128n)) + (1n << 128n)) & MASK128;
  const out: number[] = [];
  for (let i = 0; i < 8; i++) out.push(Number((v >> BigInt(16 * i)) & 0xffffn));
  return out;
}

function fromLimbs(l: ArrayLike<number>): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 16n) | BigInt(l[i]);
  return v;
}

const M = toLimbs(PCG64_MULTIPLIER);
const INV = 1 / 65536; // exact: a power of two

export class Pcg64 {
  private readonly s = new Float64Array(8);
  private readonly inc = new Float64Array(8);

  constructor(state: bigint, inc: bigint) {
    this.s.set(toLimbs(state));
    this.inc.set(toLimbs(inc));
  }

  state(): { state: bigint; inc: bigint } {
    return { state: fromLimbs(this.s), inc: fromLimbs(this.inc) };
  }

  /**
   * Writes `n64` outputs into out[0 .. 2·n64): out[2i] the low and out[2i+1] the high 32 bits of
   * output i (numpy pcg64.h pcg64_random_r: step the LCG, then output XSL-RR of the new state).
   */
  fillU32(out: Uint32Array, n64: number): void {
    if (out.length < 2 * n64) throw new Error(`Pcg64.fillU32: output holds ${out.length} u32, need ${2 * n64}`);
    let s0 = this.s[0], s1 = this.s[1], s2 = this.s[2], s3 = this.s[3];
    let s4 = this.s[4], s5 = this.s[5], s6 = this.s[6], s7 = this.s[7];
    const [i0, i1, i2, i3, i4, i5, i6, i7] = this.inc;
    const [m0, m1, m2, m3, m4, m5, m6, m7] = M;
    for (let k = 0; k < n64; k++) {
      // state = state · M + inc (mod 2^128), column by column (schoolbook, low half only).
      let c = s0 * m0 + i0, q = 0;
      q = Math.floor(c * INV); const t0 = c - q * 65536; c = q;
      c += s0 * m1 + s1 * m0 + i1;
      q = Math.floor(c * INV); const t1 = c - q * 65536; c = q;
      c += s0 * m2 + s1 * m1 + s2 * m0 + i2;
      q = Math.floor(c * INV); const t2 = c - q * 65536; c = q;
      c += s0 * m3 + s1 * m2 + s2 * m1 + s3 * m0 + i3;
      q = Math.floor(c * INV); const t3 = c - q * 65536; c = q;
      c += s0 * m4 + s1 * m3 + s2 * m2 + s3 * m1 + s4 * m0 + i4;
      q = Math.floor(c * INV); const t4 = c - q * 65536; c = q;
      c += s0 * m5 + s1 * m4 + s2 * m3 + s3 * m2 + s4 * m1 + s5 * m0 + i5;
      q = Math.floor(c * INV); const t5 = c - q * 65536; c = q;
      c += s0 * m6 + s1 * m5 + s2 * m4 + s3 * m3 + s4 * m2 + s5 * m1 + s6 * m0 + i6;
      q = Math.floor(c * INV); const t6 = c - q * 65536; c = q;
      c += s0 * m7 + s1 * m6 + s2 * m5 + s3 * m4 + s4 * m3 + s5 * m2 + s6 * m1 + s7 * m0 + i7;
      const t7 = c - Math.floor(c * INV) * 65536;
      s0 = t0; s1 = t1; s2 = t2; s3 = t3; s4 = t4; s5 = t5; s6 = t6; s7 = t7;
      // XSL-RR: (high 64 ^ low 64) rotated right by the top 6 bits of the state.
      let lo = ((s1 << 16) | s0) ^ ((s5 << 16) | s4);
      let hi = ((s3 << 16) | s2) ^ ((s7 << 16) | s6);
      let rot = s7 >>> 10;
      if (rot >= 32) {
        const t = lo; lo = hi; hi = t;
        rot -= 32;
      }
      if (rot !== 0) {
        const nlo = (lo >>> rot) | (hi << (32 - rot));
        hi = (hi >>> rot) | (lo << (32 - rot));
        lo = nlo;
      }
      out[2 * k] = lo;
      out[2 * k + 1] = hi;
    }
    this.s[0] = s0; this.s[1] = s1; this.s[2] = s2; this.s[3] = s3;
    this.s[4] = s4; this.s[5] = s5; this.s[6] = s6; this.s[7] = s7;
  }

  nextU64(): bigint {
    const u = new Uint32Array(2);
    this.fillU32(u, 1);
    return (BigInt(u[1]) << 32n) | BigInt(u[0]);
  }
}

/**
 * The stream of one tensor: d = SHA-256(UTF-8 of `${seed}/${name}`); state = d[0..16) and
 * inc = d[16..32) | 1 (an odd increment gives the LCG its full period), both big-endian.
 * Independent of tensor order, so shards can be written in any order or in parallel.
 */
export function streamKey(seed: number, name: string): { state: bigint; inc: bigint } {
  const d = createHash("sha256").update(`${seed}/${name}`, "utf8").digest();
  const hex = d.toString("hex");
  return { state: BigInt("0x" + hex.slice(0, 32)), inc: BigInt("0x" + hex.slice(32, 64)) | 1n };
}

export function streamFor(seed: number, name: string): Pcg64 {
  const k = streamKey(seed, name);
  return new Pcg64(k.state, k.inc);
}
