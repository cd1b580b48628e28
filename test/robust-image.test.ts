// Robustness of image decoding: truncated and corrupt files, empty files, unknown formats and
// decompression bombs (PNG/JPEG/GIF/BMP headers declaring huge sizes, a zlib bomb) must all end in
// a plain Error naming the image, before any allocation that grows with the declared size; the
// megapixel limit is configurable (maxMegapixels). Seeded mutations over the fixture images.
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { loadImage } from "../src/image/decode.js";
import { DEFAULT_MAX_MEGAPIXELS, preprocessImage } from "../src/image/preprocess.js";
import { expectCleanOrOk, rng, tally } from "./helpers-fuzz.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const IMAGES = path.join(ROOT, "test", "fixtures", "images");
const EXTRA = path.join(ROOT, "test", "fixtures", "images-extra");

function chunk(type: string, body: Uint8Array): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const tb = Buffer.concat([Buffer.from(type, "latin1"), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(tb));
  return Buffer.concat([len, tb, crc]);
}

/** A PNG with the given IHDR size (8-bit, colour type `ctype`) and IDAT = zlib(`raw`). */
function png(width: number, height: number, raw: Uint8Array, ctype = 0): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = ctype;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", new Uint8Array(0)),
  ]);
}

/** A baseline JPEG header (SOI, SOF0 with the given size, a scan header) and a few bytes of scan. */
function jpeg(width: number, height: number, components = 3): Buffer {
  const sof = [0xff, 0xc0, 0, 8 + 3 * components, 8, height >> 8, height & 255, width >> 8, width & 255, components];
  for (let c = 0; c < components; c++) sof.push(c + 1, 0x11, 0);
  return Buffer.from([0xff, 0xd8, ...sof, 0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0, 0x12, 0x34, 0xff, 0xd9]);
}

function gif(sw: number, sh: number, fw: number, fh: number): Buffer {
  const u16 = (v: number) => [v & 255, v >> 8];
  return Buffer.from([
    ...Buffer.from("GIF89a", "latin1"), ...u16(sw), ...u16(sh), 0x80, 0, 0, 0, 0, 0, 255, 255, 255,
    0x2c, 0, 0, 0, 0, ...u16(fw), ...u16(fh), 0, 2, 2, 0x4c, 0x01, 0, 0x3b,
  ]);
}

function bmp(width: number, height: number, bpp = 24, comp = 0, length = 54): Buffer {
  const b = Buffer.alloc(length);
  b.write("BM", 0, "latin1");
  b.writeUInt32LE(length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(width, 18);
  b.writeInt32LE(height, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(bpp, 28);
  b.writeUInt32LE(comp, 30);
  return b;
}

/** ArrayBuffer memory grown by `f` (what a giant allocation before validation would show). */
async function arrayBufferGrowth(f: () => Promise<unknown>): Promise<number> {
  const before = process.memoryUsage().arrayBuffers;
  let peak = before;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().arrayBuffers); }, 1);
  try { await f(); } catch { /* the error is what the caller checks */ }
  clearInterval(timer);
  return Math.max(peak, process.memoryUsage().arrayBuffers) - before;
}

describe("robustness: image mutations", function () {
  this.timeout(60_000);
  const t = tally();
  const r = rng(4481);

  it("truncated, bit-flipped and overwritten fixture images decode or fail naming the image", async () => {
    const files = [
      ...["Rebecca_(1939_poster)_Small.jpeg", "Menu.jpeg", "radar.png", "wechat.png"].map((f) => path.join(IMAGES, f)),
      ...fs.readdirSync(EXTRA).filter((f) => !f.endsWith(".msgpack")).map((f) => path.join(EXTRA, f)),
    ];
    for (const file of files) {
      const orig = new Uint8Array(fs.readFileSync(file));
      const big = orig.length > 20_000;
      const name = `fuzz/${path.basename(file)}`;
      const cuts = big ? 4 : 8, flips = big ? 4 : 14;
      for (let k = 0; k < cuts; k++) {
        const at = k === 0 ? r.int(0, 32) : r.int(0, orig.length - 1);
        await expectCleanOrOk(t, `${name} cut at ${at}`, [name], () => loadImage(orig.slice(0, at), { name }));
      }
      for (let k = 0; k < flips; k++) {
        const m = orig.slice();
        const n = r.int(1, 4);
        for (let j = 0; j < n; j++) {
          const at = r.next() < 0.6 ? r.int(0, Math.min(orig.length - 1, 400)) : r.int(0, orig.length - 1);
          m[at] = r.next() < 0.5 ? m[at] ^ (1 << r.int(0, 7)) : r.int(0, 255);
        }
        await expectCleanOrOk(t, `${name} flip ${k}`, [name], () => loadImage(m, { name, applyExifOrientation: k % 2 === 0 }));
      }
      if (!big) {
        // A run of garbage over the middle, and the magic bytes followed by random bytes.
        const m = orig.slice();
        const at = r.int(0, orig.length - 1);
        for (let i = at; i < Math.min(orig.length, at + 64); i++) m[i] = r.int(0, 255);
        await expectCleanOrOk(t, `${name} garbage at ${at}`, [name], () => loadImage(m, { name }));
        const g = new Uint8Array(r.int(8, 3000)).map(() => r.int(0, 255));
        g.set(orig.subarray(0, 8));
        await expectCleanOrOk(t, `${name} magic + random`, [name], () => loadImage(g, { name }));
      }
    }
    expect(t.bad, t.bad.join("\n")).to.deep.equal([]);
  });

  it("empty files, unknown formats and random bytes fail naming the image", async () => {
    const inputs: [string, Uint8Array][] = [
      ["empty", new Uint8Array(0)], ["one byte", new Uint8Array([0xff])], ["webp", Buffer.from("RIFF\0\0\0\0WEBPVP8 ")],
      ["tiff", Buffer.from("II*\0\x08\0\0\0")], ["text", Buffer.from("hello, world")], ["svg", Buffer.from("<svg></svg>")],
      ["jpeg SOI only", Buffer.from([0xff, 0xd8, 0xff])], ["png signature only", Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
      ["GIF header only", Buffer.from("GIF89a")], ["BM only", Buffer.from("BM")],
    ];
    for (let k = 0; k < 30; k++) inputs.push([`random ${k}`, new Uint8Array(r.int(1, 200)).map(() => r.int(0, 255))]);
    for (const [label, bytes] of inputs) {
      const name = `odd/${label}`;
      await expectCleanOrOk(t, name, [name], () => loadImage(bytes, { name }));
    }
    expect(t.bad, t.bad.join("\n")).to.deep.equal([]);
  });

  it("headers declaring huge images are refused before any large allocation", async () => {
    const bombs: [string, Uint8Array, RegExp][] = [
      ["png 100000x100000", png(100000, 100000, new Uint8Array(10)), /exceeds the limit of/],
      ["png 2^31x2^31", png(2 ** 31 - 1, 2 ** 31 - 1, new Uint8Array(10)), /exceeds the limit of/],
      ["png 12000x12000, no data", png(12000, 12000, new Uint8Array(10)), /PNG truncated: image data has 10 bytes/],
      ["jpeg 65535x65535", jpeg(65535, 65535), /exceeds the limit of/],
      ["jpeg cmyk 65535x65535", jpeg(65535, 65535, 4), /exceeds the limit of/],
      ["gif 65535x65535", gif(65535, 65535, 1, 1), /exceeds the limit of/],
      ["gif 1x1 screen, 65535x65535 frame", gif(1, 1, 65535, 65535), /exceeds the limit of/],
      ["bmp 2^31x2^31", bmp(2 ** 31 - 1, 2 ** 31 - 1), /exceeds the limit of/],
      ["bmp 1x-2^31", bmp(1, -(2 ** 31)), /exceeds the limit of|invalid size/],
      ["bmp 12000x12000, no data", bmp(12000, 12000), /BMP truncated/],
      ["bmp bitfields cut", bmp(4, 4, 32, 3, 60), /BMP truncated in its bitfield masks/],
    ];
    for (const [label, bytes, re] of bombs) {
      const name = `bomb/${label}`;
      let err: Error | undefined;
      const grown = await arrayBufferGrowth(async () => {
        try { await loadImage(bytes, { name }); } catch (e) { err = e as Error; }
      });
      expect(err, label).to.be.instanceOf(Error);
      expect(err!.message, label).to.match(new RegExp(`^${name.replace(/[()^*+?.\\[\]]/g, "\\$&")}: `)).and.to.match(re);
      expect(grown, `${label}: ArrayBuffer growth`).to.be.below(16 << 20);
      t.tried++; t.errors++;
    }
  });

  it("a zlib bomb inside a small PNG stops inflating past the size the header implies", async () => {
    const bytes = png(16, 16, new Uint8Array(64 << 20)); // 64 MiB of zeros behind a 16x16 header: ~65 KB file
    expect(bytes.length).to.be.below(100_000);
    const name = "bomb/zlib";
    let err: Error | undefined;
    const grown = await arrayBufferGrowth(async () => {
      try { await loadImage(bytes, { name }); } catch (e) { err = e as Error; }
    });
    expect(err?.message).to.match(/^bomb\/zlib: PNG image data: decompresses to more than \d+ bytes/);
    expect(grown).to.be.below(16 << 20);
    t.tried++; t.errors++;
  });

  it("maxMegapixels bounds the accepted size, through loadImage and preprocessImage", async () => {
    const bytes = new Uint8Array(fs.readFileSync(path.join(IMAGES, "Rebecca_(1939_poster)_Small.jpeg"))); // 161x240
    expect(DEFAULT_MAX_MEGAPIXELS).to.be.closeTo(178.96, 0.01);
    await loadImage(bytes, { name: "r", maxMegapixels: 0.0387 });
    let err: Error | undefined;
    try { await loadImage(bytes, { name: "r.jpeg", maxMegapixels: 0.0386 }); } catch (e) { err = e as Error; }
    expect(err?.message).to.equal("r.jpeg: image size 161x240 (38640 pixels) exceeds the limit of 38600 pixels (maxMegapixels 0.0386)");
    err = undefined;
    try { await preprocessImage(fs.readFileSync(path.join(IMAGES, "radar.png")), { name: "radar.png", maxMegapixels: 0.01 }); } catch (e) { err = e as Error; }
    expect(err?.message).to.match(/^radar\.png: image size \d+x\d+ \(\d+ pixels\) exceeds the limit of 10000 pixels/);
    for (const bad of [0, -1, NaN, Infinity]) {
      err = undefined;
      try { await loadImage(bytes, { name: "r", maxMegapixels: bad }); } catch (e) { err = e as Error; }
      expect(err?.message).to.match(/^r: maxMegapixels must be a positive finite number/);
    }
    console.log(`      image mutations: ${t.tried} tried, ${t.errors} clean errors, ${t.loads} decoded`);
  });
});
