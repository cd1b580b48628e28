// Half-precision conversions (IEEE 754 binary16 and bfloat16), exact in both directions that
// matter: every f16/bf16 bit pattern widens to the f32 with the same value (subnormals, ±0, ±inf,
// NaN payloads kept), and f32 → f16/bf16 rounds to nearest, ties to even, like torch's `.half()`.
//
// API
//   f16ToF32(bits: number): number                        one binary16 pattern → its value
//   f16ArrayToF32(src: Uint16Array, out?: Float32Array): Float32Array
//   bf16ToF32(bits: number): number
//   bf16ArrayToF32(src: Uint16Array, out?: Float32Array): Float32Array
//   f32ToF16(x: number): number                           value → binary16 pattern (RNE)
//   f32ToBf16(x: number): number                          value → bfloat16 pattern (RNE)
//   f32ArrayToF16(src: Float32Array, out?: Uint16Array): Uint16Array
//   f32ArrayToBf16(src: Float32Array, out?: Uint16Array): Uint16Array

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** binary16 → f32 bit pattern. Layout: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf / NaN (payload kept)
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // 112 = 127 − 15
  if (mant === 0) return sign >>> 0; // ±0
  // Subnormal: value = mant · 2^−24. Normalise so the leading 1 becomes the implicit bit.
  let e = 113; // exponent field (biased 127) of 2^−14, the subnormal scale
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

// All 65,536 binary16 values, built once on first use (256 KiB): bulk conversion is a table lookup.
let f16Table: Float32Array | null = null;
function table(): Float32Array {
  if (f16Table === null) {
    const bits = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) bits[h] = f16BitsToF32Bits(h);
    f16Table = new Float32Array(bits.buffer);
  }
  return f16Table;
}

export function f16ToF32(bits: number): number {
  scratchU32[0] = f16BitsToF32Bits(bits & 0xffff);
  return scratchF32[0];
}

export function f16ArrayToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length < src.length) throw new Error(`f16ArrayToF32: output holds ${out.length} values, need ${src.length}`);
  const t = table();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

/** bfloat16 is the top half of an f32, so widening is a shift. */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

export function bf16ArrayToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length < src.length) throw new Error(`bf16ArrayToF32: output holds ${out.length} values, need ${src.length}`);
  const u = new Uint32Array(out.buffer, out.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
  return out;
}

export function f32ToF16(x: number): number {
  scratchF32[0] = x;
  const u = scratchU32[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // inf / quiet NaN
  if (exp >= 113) {
    // Normal in binary16 unless rounding or range overflows to inf (exp ≥ 143 → ≥ 65536).
    if (exp >= 143) return sign | 0x7c00;
    let h = ((exp - 112) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++; // a carry may reach inf: correct
    return sign | h;
  }
  // Subnormal or zero in binary16: value = m · 2^(exp−150) with the 24-bit significand m;
  // in units of 2^−24 that is m >> (126 − exp).
  const shift = 126 - exp;
  if (shift > 24) return sign; // below half the smallest subnormal (ties at exactly half → 0, even)
  const m = mant | 0x800000;
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1) !== 0)) h++;
  return sign | h;
}

export function f32ToBf16(x: number): number {
  scratchF32[0] = x;
  const u = scratchU32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f32ArrayToF16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16(src[i]);
  return out;
}

export function f32ArrayToBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16(src[i]);
  return out;
}
