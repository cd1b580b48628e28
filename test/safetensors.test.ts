// safetensors reader: happy path, every validation error, and exact f16/bf16 conversions.
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SafetensorsFile, encodeHeader } from "../src/io/safetensors.js";
import {
  bf16ArrayToF32,
  bf16ToF32,
  f16ArrayToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
} from "../src/io/fp16.js";

let tmp: string;

/** Writes [u64 header length][header JSON][data] exactly as given (no padding, no checks). */
function writeRaw(name: string, header: unknown, data: Uint8Array, lengthOverride?: bigint): string {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const buf = new Uint8Array(8 + json.length + data.length);
  new DataView(buf.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  buf.set(json, 8);
  buf.set(data, 8 + json.length);
  const p = path.join(tmp, name);
  fs.writeFileSync(p, buf);
  return p;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

describe("safetensors reader", () => {
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qwenvl-st-"));
  });
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("reads every supported dtype at unaligned offsets", () => {
    const f32 = new Float32Array([1.5, -2, 3.25]);
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x7c00]); // 1, -2, inf
    const i32 = new Int32Array([-7, 2147483647]);
    const u8 = new Uint8Array([1, 2, 255]);
    const i8 = new Int8Array([-128, 5]);
    const i64 = new BigInt64Array([-3n, 1n << 40n]);
    const f64 = new Float64Array([Math.PI]);
    const bf16 = new Uint16Array([0x3f80]);
    // u8 first so the rest sit at odd offsets: the reader must still give aligned views.
    const entries = [
      { name: "u8", dtype: "U8" as const, shape: [3], data: u8 },
      { name: "f32", dtype: "F32" as const, shape: [3], data: f32 },
      { name: "f16", dtype: "F16" as const, shape: [1, 3], data: f16 },
      { name: "i32", dtype: "I32" as const, shape: [2], data: i32 },
      { name: "i8", dtype: "I8" as const, shape: [2], data: i8 },
      { name: "i64", dtype: "I64" as const, shape: [2], data: i64 },
      { name: "f64", dtype: "F64" as const, shape: [], data: f64 },
      { name: "bf16", dtype: "BF16" as const, shape: [1], data: bf16 },
    ];
    const { header, dataBytes } = encodeHeader(entries, { format: "pt" });
    const data = new Uint8Array(dataBytes);
    let pos = 0;
    for (const e of entries) {
      data.set(bytesOf(e.data), pos);
      pos += e.data.byteLength;
    }
    const p = path.join(tmp, "ok.safetensors");
    fs.writeFileSync(p, Buffer.concat([header, data]));
    const f = SafetensorsFile.open(p);
    expect(f.metadata).to.deep.equal({ format: "pt" });
    expect(f.names()).to.have.members(entries.map((e) => e.name));
    expect(f.info("f16").shape).to.deep.equal([1, 3]);
    for (const e of entries) {
      const t = f.read(e.name);
      expect(t.data.constructor).to.equal(e.data.constructor === Uint8Array ? Uint8Array : e.data.constructor);
      expect(Array.from(t.data as ArrayLike<number>)).to.deep.equal(Array.from(e.data as ArrayLike<number>));
    }
    expect(() => f.info("nope")).to.throw(/missing tensor "nope"/);
    f.close();
  });

  // One crafted file per validation error.
  const good = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };

  it("rejects a file shorter than the length prefix", () => {
    const p = path.join(tmp, "short.safetensors");
    fs.writeFileSync(p, new Uint8Array(5));
    expect(() => SafetensorsFile.open(p)).to.throw(/short\.safetensors: truncated file: 5 bytes/);
  });

  it("rejects a header length past the end of the file", () => {
    const p = writeRaw("len.safetensors", good, new Uint8Array(8), 1000n);
    expect(() => SafetensorsFile.open(p)).to.throw(/len\.safetensors: header length 1000 runs past the end of the file/);
  });

  it("rejects a header that is not JSON", () => {
    const p = writeRaw("json.safetensors", "{not json", new Uint8Array(0));
    expect(() => SafetensorsFile.open(p)).to.throw(/json\.safetensors: header is not valid UTF-8 JSON/);
  });

  it("rejects an unknown dtype, naming the tensor", () => {
    const p = writeRaw("dtype.safetensors", { w: { dtype: "F8_E4M3", shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2));
    expect(() => SafetensorsFile.open(p)).to.throw(/dtype\.safetensors: tensor "w": unknown dtype "F8_E4M3"/);
  });

  it("rejects a data size that does not match dtype × shape", () => {
    const p = writeRaw("size.safetensors", { w: { dtype: "F16", shape: [2, 3], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(() => SafetensorsFile.open(p)).to.throw(/tensor "w": data size 8 bytes does not match dtype F16 × shape \[2, 3\] = 12 bytes/);
  });

  it("rejects overlapping data offsets", () => {
    const h = {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    };
    const p = writeRaw("overlap.safetensors", h, new Uint8Array(12));
    expect(() => SafetensorsFile.open(p)).to.throw(/tensor "b": data_offsets \[4, 12\] overlap tensor "a"/);
  });

  it("rejects data offsets out of range", () => {
    const h = {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [1], data_offsets: [100, 104] },
    };
    const p = writeRaw("range.safetensors", h, new Uint8Array(12));
    expect(() => SafetensorsFile.open(p)).to.throw(/tensor "b": data_offsets \[100, 104\] out of range: the data area has 12 bytes/);
  });

  it("rejects malformed data offsets (end before begin)", () => {
    const p = writeRaw("order.safetensors", { a: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8));
    expect(() => SafetensorsFile.open(p)).to.throw(/tensor "a": data_offsets must be \[begin, end\]/);
  });

  it("rejects a truncated file", () => {
    const h = {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [4], data_offsets: [8, 24] },
    };
    const p = writeRaw("trunc.safetensors", h, new Uint8Array(20));
    expect(() => SafetensorsFile.open(p)).to.throw(/trunc\.safetensors: truncated file: .* \(tensor "b" is cut off\)/);
  });

  it("rejects holes and trailing bytes in the data area", () => {
    const hole = { a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } };
    const p1 = writeRaw("hole.safetensors", hole, new Uint8Array(8));
    expect(() => SafetensorsFile.open(p1)).to.throw(/tensor "a": data starts at 4 but the previous tensor ends at 0/);
    const p2 = writeRaw("trail.safetensors", good, new Uint8Array(12));
    expect(() => SafetensorsFile.open(p2)).to.throw(/4 bytes after the last tensor/);
  });

  it("rejects a bad shape", () => {
    const p = writeRaw("shape.safetensors", { a: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }, new Uint8Array(0));
    expect(() => SafetensorsFile.open(p)).to.throw(/tensor "a": shape must be an array of non-negative integers/);
  });
});

describe("fp16 / bf16 conversions", () => {
  it("f16 → f32 is exact on every bit pattern (against a float64 formula)", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const bulk = f16ArrayToF32(all);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 31;
      const m = h & 1023;
      const want = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
      const got = f16ToF32(h);
      if (Number.isNaN(want)) {
        expect(Number.isNaN(got) && Number.isNaN(bulk[h]), `pattern ${h}`).to.equal(true);
      } else {
        expect(Object.is(got, want) && Object.is(bulk[h], want), `pattern ${h}: ${got} vs ${want}`).to.equal(true);
      }
    }
  });

  it("f32 → f16 → f32 round-trips every f16 value, incl. -0 and subnormals", () => {
    for (let h = 0; h < 65536; h++) {
      if (((h >> 10) & 31) === 31 && (h & 1023) !== 0) continue; // NaNs: payload only
      expect(f32ToF16(f16ToF32(h)), `pattern ${h}`).to.equal(h);
    }
    expect(f32ToF16(NaN) & 0x7c00).to.equal(0x7c00);
    expect(f32ToF16(NaN) & 0x3ff).to.not.equal(0);
  });

  it("f32 → f16 rounds to nearest, ties to even, with overflow to inf and underflow to 0", () => {
    expect(f32ToF16(1 + 2 ** -11)).to.equal(0x3c00); // tie between 1 and 1+2^-10 → even (1)
    expect(f32ToF16(1 + 3 * 2 ** -11)).to.equal(0x3c02); // tie → even (1+2^-9)
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).to.equal(0x3c01); // just above the tie
    expect(f32ToF16(65504)).to.equal(0x7bff);
    expect(f32ToF16(65519.99)).to.equal(0x7bff);
    expect(f32ToF16(65520)).to.equal(0x7c00); // tie at max → even → inf
    expect(f32ToF16(-1e6)).to.equal(0xfc00);
    expect(f32ToF16(2 ** -24)).to.equal(1); // smallest subnormal
    expect(f32ToF16(2 ** -25)).to.equal(0); // tie with 0 → even
    expect(f32ToF16(1.5 * 2 ** -25)).to.equal(1);
    expect(f32ToF16(3 * 2 ** -25)).to.equal(2); // 1.5 units → tie → even (2)
    expect(f32ToF16(2 ** -14 - 2 ** -25)).to.equal(0x0400); // rounds up into the smallest normal
    expect(f32ToF16(-0)).to.equal(0x8000);
  });

  it("bf16 conversions are exact and round to nearest even", () => {
    expect(bf16ToF32(0x3f80)).to.equal(1);
    expect(bf16ToF32(0xff80)).to.equal(-Infinity);
    expect(Number.isNaN(bf16ToF32(0x7fc1))).to.equal(true);
    expect(bf16ToF32(0x0001)).to.equal(2 ** -133); // subnormal
    const src = new Uint16Array([0x3f80, 0xc000, 0x0001, 0x7f7f]);
    expect(Array.from(bf16ArrayToF32(src))).to.deep.equal(Array.from(src, (b) => bf16ToF32(b)));
    expect(f32ToBf16(1 + 2 ** -8)).to.equal(0x3f80); // tie → even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).to.equal(0x3f82);
    expect(f32ToBf16(Math.fround(1 + 2 ** -8 + 2 ** -20))).to.equal(0x3f81);
    expect(f32ToBf16(3.4e38)).to.equal(0x7f80); // rounds past the largest bf16 → inf
    expect(f32ToBf16(NaN) & 0x7fc0).to.equal(0x7fc0);
  });
});
