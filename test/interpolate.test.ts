// Torch-semantics bicubic resize (src/model/interpolate.ts). Expected values are worked out by hand
// from PyTorch's formulas (UpSample.h: A = −0.75, src = 0.5·(dst + 0.5) − 0.5 for 2×, taps
// clamped to the edge); every one is a short dyadic fraction, so float32 reproduces it exactly.
import { expect } from "chai";
import { bicubicResizeTorch, cubicCoefficients, getAbsPos } from "../src/model/interpolate.js";

describe("torch bicubic interpolation", () => {
  it("has the A = -0.75 cubic-convolution weights", () => {
    expect(cubicCoefficients(0)).to.deep.equal([0, 1, 0, 0]);
    // t = 0.25: cc2(1.25), cc1(0.25), cc1(0.75), cc2(1.75)
    expect(cubicCoefficients(0.25)).to.deep.equal([-0.10546875, 0.87890625, 0.26171875, -0.03515625]);
    expect(cubicCoefficients(0.75)).to.deep.equal([-0.03515625, 0.26171875, 0.87890625, -0.10546875]);
    expect(cubicCoefficients(0.5)).to.deep.equal([-0.09375, 0.59375, 0.59375, -0.09375]);
  });

  it("upsamples a ramp 4 -> 8 with torch's edge overshoot (negative source index kept, taps clamped)", () => {
    // out[0]: src −0.25 → floor −1, t 0.75, taps −2..1 clamp to [0,0,0,1]: −0.10546875·1.
    // out[3]: src 1.25 → taps 0..3, t 0.25: 0.87890625 + 2·0.26171875 − 3·0.03515625.
    const expected = [-0.10546875, 0.19140625, 0.66796875, 1.296875, 1.703125, 2.33203125, 2.80859375, 3.10546875];
    const row = bicubicResizeTorch(new Float32Array([0, 1, 2, 3]), 1, 4, 1, 1, 8);
    expect(Array.from(row)).to.deep.equal(expected);
    const col = bicubicResizeTorch(new Float32Array([0, 1, 2, 3]), 4, 1, 1, 8, 1);
    expect(Array.from(col)).to.deep.equal(expected);
  });

  it("is separable: a 2-D grid of a row ramp varies only along the rows", () => {
    const src = new Float32Array(16);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) src[y * 4 + x] = x;
    const out = bicubicResizeTorch(src, 4, 4, 1, 8, 8);
    const first = Array.from(out.subarray(0, 8));
    expect(first).to.deep.equal([-0.10546875, 0.19140625, 0.66796875, 1.296875, 1.703125, 2.33203125, 2.80859375, 3.10546875]);
    for (let y = 1; y < 8; y++) expect(Array.from(out.subarray(y * 8, y * 8 + 8))).to.deep.equal(first);
  });

  it("keeps channels independent in the position-major layout", () => {
    // Channel 1 is channel 0 negated; rounding is symmetric, so the output is exactly negated too.
    const n = 5 * 5;
    const src = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      src[i * 2] = Math.fround(Math.sin(i) * 3);
      src[i * 2 + 1] = -src[i * 2];
    }
    const out = bicubicResizeTorch(src, 5, 5, 2, 7, 9);
    expect(out.length).to.equal(7 * 9 * 2);
    for (let i = 0; i < 7 * 9; i++) expect(out[i * 2 + 1]).to.equal(-out[i * 2]);
  });

  it("leaves a constant grid constant", () => {
    const out = bicubicResizeTorch(new Float32Array(16 * 16).fill(0.5), 16, 16, 1, 32, 32);
    for (const v of out) expect(v).to.equal(0.5);
  });

  it("get_abs_pos: same size is the table itself, other sizes resize, bad sizes throw", () => {
    const table = new Float32Array(16 * 3).map((_, i) => i);
    expect(getAbsPos(table, 16, 3, 16)).to.equal(table);
    expect(getAbsPos(table, 16, 3, 64).length).to.equal(64 * 3);
    expect(() => getAbsPos(table, 16, 3, 60)).to.throw(/not a square/);
    expect(() => getAbsPos(new Float32Array(15 * 3), 15, 3, 64)).to.throw(/not a square/);
    expect(() => bicubicResizeTorch(table, 4, 4, 2, 8, 8)).to.throw(/expected 4×4×2/);
  });
});
