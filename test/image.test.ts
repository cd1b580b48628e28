// Image loading and preprocessing against the reference's own pixels (tiny-a vision goldens) and
// against Pillow's decoding of the extra fixtures (tools/make-image-goldens.py).
import { expect } from "chai";
import { readFileSync, readdirSync } from "node:fs";
import { unpack } from "msgpackr";
import { loadImage, preprocessImage, resizeBicubicPIL, sniffFormat, normalizeCLIP, CLIP_MEAN, CLIP_STD } from "../src/image/preprocess.js";
import { decodeJpegExact } from "../src/image/cmyk.js";
import { rgbaToRgb } from "../src/image/jpeg.js";

const FIX = new URL("./fixtures/", import.meta.url.replace("/dist/test/", "/test/"));
const fixture = (p: string): Uint8Array => new Uint8Array(readFileSync(new URL(p, FIX)));

interface Golden { meta: Record<string, unknown>; tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> }
const golden = (p: string): Golden => unpack(fixture(p)) as Golden;

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function rejects(p: Promise<unknown>): Promise<Error> {
  try { await p; } catch (e) { return e as Error; }
  throw new Error("expected a rejection");
}

describe("image: reference pixels_u8 (tiny-a vision goldens)", function () {
  this.timeout(20000);
  const cases = readdirSync(new URL("tiny-a/", FIX)).filter((f) => f.startsWith("vision-") && f.endsWith(".msgpack"));
  it("covers all six reference images", () => expect(cases.length).to.equal(6));
  for (const file of cases) {
    it(`${file}: bit-exact 448x448 RGB and the normalised tensor`, async () => {
      const g = golden(`tiny-a/${file}`);
      const imageName = g.meta.image as string;
      const bytes = fixture(`images/${imageName}`);
      const img = await loadImage(bytes, { name: imageName });
      expect([img.width, img.height]).to.deep.equal(g.meta.image_size);
      const { pixelsU8, pixels } = await preprocessImage(bytes, { name: imageName });
      const ref = g.tensors.pixels_u8;
      expect(ref.shape).to.deep.equal([448, 448, 3]);
      expect(maxDiff(pixelsU8, ref.data), `${imageName} max level difference`).to.equal(0);
      // CHW layout, torch float32 arithmetic: spot-check against an independent per-element computation.
      const f = Math.fround;
      for (const [c, y, x] of [[0, 0, 0], [1, 200, 317], [2, 447, 447], [0, 123, 5]]) {
        const v = ref.data[(y * 448 + x) * 3 + c];
        expect(pixels[c * 448 * 448 + y * 448 + x]).to.equal(f(f(f(v / 255) - f(CLIP_MEAN[c])) / f(CLIP_STD[c])));
      }
    });
  }
  it("the built-in JPEG decoder matches mozjpeg on the reference and extra 1/3-component JPEGs", async () => {
    const files = ["images/Menu.jpeg", "images/Rebecca_(1939_poster)_Small.jpeg", "images/Shanghai_Small.jpeg", "images/wechat.png",
      "images-extra/progressive.jpg", "images-extra/rgb-422.jpg", "images-extra/gray.jpg", "images-extra/exif-rotate.jpg"];
    for (const f of files) {
      const bytes = fixture(f);
      const a = await loadImage(bytes);
      const b = decodeJpegExact(bytes, f);
      const rgb = b.channels === 1 ? Uint8Array.from({ length: b.data.length * 3 }, (_, i) => b.data[Math.floor(i / 3)]) : b.data;
      expect(maxDiff(a.rgb, rgb), f).to.equal(0);
    }
  });
});

describe("image: RGBA → RGB", () => {
  it("rgbaToRgb keeps bytes 0..2 of every pixel: word path, n % 4 tails, unaligned views", () => {
    for (const [n, off] of [[0, 0], [1, 0], [3, 0], [4, 0], [7, 0], [1001, 0], [1001, 1], [9, 2]] as const) {
      const buf = new Uint8ClampedArray(off + 4 * n + 3);
      for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + 7) & 255;
      const d = buf.subarray(off, off + 4 * n);
      const want = new Uint8Array(3 * n);
      for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) want[3 * i + c] = d[4 * i + c];
      expect(rgbaToRgb(d, n), `n ${n}, offset ${off}`).to.deep.equal(want);
    }
    expect(() => rgbaToRgb(new Uint8Array(7), 2)).to.throw(/7 bytes hold fewer than 2 RGBA pixels/);
  });
});

describe("image: normalisation", () => {
  it("matches numpy float32 (x/255 - mean)/std for all 256 byte values", () => {
    const lut = golden("images-extra/clip-normalize.msgpack").tensors.lut;
    const ref = new Float32Array(lut.data.slice().buffer);
    const px = new Uint8Array(256 * 3);
    for (let v = 0; v < 256; v++) px.fill(v, v * 3, v * 3 + 3);
    // 256 pixels laid out as a 16x16 image.
    const out = normalizeCLIP(px, 16);
    for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) expect(out[c * 256 + v]).to.equal(ref[c * 256 + v]);
  });
});

describe("image: extra formats against Pillow", function () {
  this.timeout(20000);
  const files = readdirSync(new URL("images-extra/", FIX)).filter((f) => !f.endsWith(".msgpack"));
  it("has the extra fixtures", () => expect(files.length).to.be.greaterThan(20));
  for (const file of files) {
    it(`${file}: decoded RGB and bicubic up/down-scaling bit-exact`, async () => {
      const g = golden(`images-extra/${file}.msgpack`);
      const bytes = fixture(`images-extra/${file}`);
      const img = await loadImage(bytes, { name: file });
      const [h, w] = g.tensors.rgb.shape;
      expect([img.height, img.width]).to.deep.equal([h, w]);
      expect(maxDiff(img.rgb, g.tensors.rgb.data), `${file} (${g.meta.note})`).to.equal(0);
      for (const k of ["up", "down"]) {
        const [oh, ow] = g.tensors[k].shape;
        expect(maxDiff(resizeBicubicPIL(img.rgb, w, h, ow, oh), g.tensors[k].data), `${file} ${k}`).to.equal(0);
      }
      if (g.tensors.exif_rgb) {
        const r = await loadImage(bytes, { name: file, applyExifOrientation: true });
        const [eh, ew] = g.tensors.exif_rgb.shape;
        expect([r.height, r.width]).to.deep.equal([eh, ew]);
        expect(maxDiff(r.rgb, g.tensors.exif_rgb.data)).to.equal(0);
      }
    });
  }
});

describe("image: format sniffing, EXIF, errors", function () {
  this.timeout(20000);
  it("detects formats by content, not by name", () => {
    expect(sniffFormat(fixture("images/wechat.png"))).to.equal("jpeg");
    expect(sniffFormat(fixture("images/radar.png"))).to.equal("png");
    expect(sniffFormat(fixture("images-extra/pal.gif"))).to.equal("gif");
    expect(sniffFormat(fixture("images-extra/rgb24.bmp"))).to.equal("bmp");
    expect(sniffFormat(new TextEncoder().encode("RIFF\0\0\0\0WEBPVP8 "))).to.equal("webp");
  });
  it("drops alpha of an RGBA PNG without compositing", async () => {
    // radar.png is RGBA; its golden already proves the result. Check the raw behaviour too:
    // pixels with alpha 0 keep their stored colour.
    const img = await loadImage(fixture("images-extra/rgba8-interlaced.png"));
    const g = golden("images-extra/rgba8-interlaced.png.msgpack");
    expect(maxDiff(img.rgb, g.tensors.rgb.data)).to.equal(0);
  });
  it("does not apply EXIF orientation by default, and does when asked", async () => {
    const bytes = fixture("images-extra/exif-rotate.jpg");
    const plain = await loadImage(bytes);
    const turned = await loadImage(bytes, { applyExifOrientation: true });
    expect([plain.width, plain.height]).to.deep.equal([37, 29]);
    expect([turned.width, turned.height]).to.deep.equal([29, 37]);
    const a = await preprocessImage(bytes, { imageSize: 32 });
    const b = await preprocessImage(bytes, { imageSize: 32, applyExifOrientation: true });
    expect(maxDiff(a.pixelsU8, b.pixelsU8)).to.be.greaterThan(50);
  });
  it("honours imageSize", async () => {
    const r = await preprocessImage(fixture("images-extra/tiny.png"), { imageSize: 30 });
    expect(r.pixelsU8.length).to.equal(30 * 30 * 3);
    expect(r.pixels.length).to.equal(3 * 30 * 30);
  });
  it("rejects empty, random and truncated files with the file name and the problem", async () => {
    expect((await rejects(loadImage(new Uint8Array(0), { name: "empty.jpg" }))).message).to.match(/empty\.jpg: file is empty/);
    let seed = 7;
    const noise = Uint8Array.from({ length: 1000 }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
    noise[0] = 0x12;
    expect((await rejects(loadImage(noise, { name: "noise.bin" }))).message).to.match(/noise\.bin: unrecognised image format/);
    const jpg = fixture("images/Shanghai_Small.jpeg");
    expect((await rejects(loadImage(jpg.subarray(0, jpg.length >> 1), { name: "half.jpg" }))).message).to.match(/half\.jpg: JPEG truncated/);
    expect((await rejects(loadImage(jpg.subarray(0, 300), { name: "head.jpg" }))).message).to.match(/head\.jpg: JPEG truncated/);
    const cmyk = fixture("images-extra/cmyk.jpg");
    expect((await rejects(loadImage(cmyk.subarray(0, cmyk.length - 400), { name: "cmyk-cut.jpg" }))).message).to.match(/cmyk-cut\.jpg: JPEG truncated/);
    const png = fixture("images/radar.png");
    expect((await rejects(loadImage(png.subarray(0, png.length >> 1), { name: "half.png" }))).message).to.match(/half\.png: PNG truncated/);
    const bad = png.slice(); bad[20] ^= 0xff; // inside IHDR's data
    expect((await rejects(loadImage(bad, { name: "bad.png" }))).message).to.match(/bad\.png: PNG chunk "IHDR" .*CRC/);
    expect((await rejects(loadImage(new TextEncoder().encode("RIFF\0\0\0\0WEBPVP8 "), { name: "x.webp" }))).message).to.match(/x\.webp: WEBP images are not supported/);
    const gif = fixture("images-extra/pal.gif");
    expect((await rejects(loadImage(gif.subarray(0, 200), { name: "cut.gif" }))).message).to.match(/cut\.gif: GIF truncated/);
  });
  it("keeps decoding JPEGs exactly after many libjpeg failures", async () => {
    // libjpeg's fatal errors leave mozjpeg through exit(), which does not restore the WASM stack; a
    // reused instance broke ("memory access out of bounds") after about 35 such failures.
    const good = fixture("images-extra/progressive.jpg");
    const bad = good.slice();
    bad[237] = 0x4f; // first SOS: Huffman table selectors DC 4 / AC 15, which do not exist
    for (let i = 0; i < 60; i++) {
      expect((await rejects(loadImage(bad, { name: "sel.jpg" }))).message).to.match(/sel\.jpg: corrupt or unsupported JPEG \(Huffman table 0x04 was not defined\)/);
    }
    const g = golden("images-extra/progressive.jpg.msgpack");
    expect(maxDiff((await loadImage(good)).rgb, g.tensors.rgb.data)).to.equal(0);
  });
  it("resizeBicubicPIL validates its arguments", () => {
    expect(() => resizeBicubicPIL(new Uint8Array(5), 2, 2, 4, 4)).to.throw(/expected 2x2x3/);
    expect(() => resizeBicubicPIL(new Uint8Array(12), 2, 2, 0, 4)).to.throw(/outW must be a positive integer/);
  });
});
