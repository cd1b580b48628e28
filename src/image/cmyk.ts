// A JPEG decoder written to reproduce libjpeg-turbo's default decompression bit for bit, used for
// the images the WASM decoder (@jsquash/jpeg, mozjpeg) refuses: 4-component CMYK and YCCK files.
// It also decodes 1- and 3-component files, which lets the tests check it against mozjpeg.
//
// Pillow decodes JPEG with libjpeg(-turbo) using the library defaults (src/libImaging/JpegDecode.c
// only picks out_color_space), so the steps to reproduce are libjpeg's:
//   - Huffman entropy decoding, baseline (SOF0/SOF1) and progressive (SOF2): ITU-T T.81 Annex F/G,
//     progressive refinement exactly as libjpeg's jdphuff.c `decode_mcu_AC_refine`;
//   - JDCT_ISLOW inverse DCT (jidctint.c `jpeg_idct_islow`: CONST_BITS 13, PASS1_BITS 2, its
//     range-limit table with RANGE_MASK 1023 from jdmaster.c `prepare_range_limit_table`);
//   - "fancy" triangle upsampling (jdsample.c h2v1/h1v2/h2v2_fancy_upsample; edge rows duplicated as
//     jdmainct.c does), plain replication for other integer ratios (`int_upsample`);
//   - colour conversion (jdcolor.c: `ycc_rgb_convert`, `ycck_cmyk_convert`, fixed point SCALEBITS 16).
// A 4-component frame is CMYK unless an Adobe APP14 marker says transform 2 (YCCK) — jdapimin.c
// `default_decompress_parms`.
import { MAX_PIXELS, checkImageSize } from "./limits.js";

export interface JpegPlanes {
  width: number;
  height: number;
  /** Colour-converted samples, interleaved: 1 (gray), 3 (RGB) or 4 (CMYK as libjpeg outputs it). */
  channels: number;
  data: Uint8Array;
}

// Zigzag position → natural (row-major) index, plus 16 guard entries as in libjpeg's
// jpeg_natural_order (jutils.c) so that a corrupt run past 63 lands on coefficient 63.
const NATURAL = new Int32Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,
  7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
  39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
]);

interface Huffman { maxcode: Int32Array; valptr: Int32Array; mincode: Int32Array; values: Uint8Array }

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  // T.81 Annex C / F.2.2.3: canonical codes, decoded with MINCODE/MAXCODE/VALPTR per length.
  const maxcode = new Int32Array(18).fill(-1), valptr = new Int32Array(17), mincode = new Int32Array(17);
  let code = 0, k = 0;
  for (let l = 1; l <= 16; l++) {
    valptr[l] = k;
    mincode[l] = code;
    code += counts[l - 1];
    k += counts[l - 1];
    maxcode[l] = counts[l - 1] ? code - 1 : -1;
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  return { maxcode, valptr, mincode, values };
}

interface Component {
  id: number; h: number; v: number; tq: number;
  bw: number; bh: number;        // blocks per line/column that hold image data (libjpeg width_in_blocks)
  bwPad: number; bhPad: number;  // padded to whole MCUs
  coefs: Int32Array;             // [bhPad][bwPad][64], natural order, not dequantised
  pred: number; dc?: Huffman; ac?: Huffman;
}

/** Entropy-coded segment reader: removes FF00 stuffing, yields zeros past the end (libjpeg fills zeros on a marker or EOF). */
class BitReader {
  private acc = 0; private nbits = 0; pos: number; private end: number;
  constructor(private b: Uint8Array, start: number, private segEnd: number) { this.pos = start; this.end = segEnd; }
  bit(): number {
    if (this.nbits === 0) {
      let byte = 0;
      if (this.pos < this.end) {
        byte = this.b[this.pos++];
        if (byte === 0xff) {
          const nxt = this.b[this.pos];
          if (nxt === 0) this.pos++;
          else { this.pos--; byte = 0; this.end = this.pos; } // a marker: stop feeding real data
        }
      }
      this.acc = byte; this.nbits = 8;
    }
    this.nbits--;
    return (this.acc >> this.nbits) & 1;
  }
  bits(n: number): number { let v = 0; for (let i = 0; i < n; i++) v = (v << 1) | this.bit(); return v; }
  /** T.81 F.2.2.1 EXTEND: an n-bit magnitude category to a signed value. */
  extend(n: number): number { const v = this.bits(n); return v < 1 << (n - 1) ? v - (1 << n) + 1 : v; }
  decode(h: Huffman): number {
    let code = this.bit(), l = 1;
    while (code > h.maxcode[l]) { code = (code << 1) | this.bit(); l++; if (l > 16) return 0; } // corrupt: libjpeg also yields 0
    return h.values[h.valptr[l] + code - h.mincode[l]];
  }
  /** At a restart interval: drop the partial byte and skip the RSTn marker. */
  restart(): void {
    this.nbits = 0;
    while (this.pos + 1 < this.b.length && !(this.b[this.pos] === 0xff && this.b[this.pos + 1] >= 0xd0 && this.b[this.pos + 1] <= 0xd7)) {
      if (this.b[this.pos] === 0xff && this.b[this.pos + 1] !== 0 && this.b[this.pos + 1] !== 0xff) return; // another marker: leave it
      this.pos++;
    }
    this.pos += 2;
    this.end = this.segEnd; // real data flows again after the restart marker
  }
}

/** End of an entropy-coded segment: the first marker that is neither FF00 stuffing nor RSTn. */
function segmentEnd(b: Uint8Array, p: number): number {
  while (p + 1 < b.length) {
    if (b[p] === 0xff) {
      const m = b[p + 1];
      if (m !== 0 && m !== 0xff && !(m >= 0xd0 && m <= 0xd7)) return p;
    }
    p++;
  }
  return b.length;
}

/** Decode a JPEG file (baseline or progressive Huffman, 8-bit) to colour-converted samples. */
export function decodeJpegExact(b: Uint8Array, name = "image", maxPixels = MAX_PIXELS): JpegPlanes {
  const fail = (msg: string): never => { throw new Error(`${name}: ${msg}`); };
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) fail("not a JPEG file (no SOI marker)");
  const qt: Int32Array[] = [];
  const dcTables: Huffman[] = [], acTables: Huffman[] = [];
  let comps: Component[] = [];
  let width = 0, height = 0, progressive = false, hmax = 1, vmax = 1, mcusX = 0, mcusY = 0;
  let restartInterval = 0, adobeTransform = -1, sawEOI = false, sawScan = false;
  let eobrun = 0;
  let p = 2;
  while (p < b.length) {
    if (b[p] !== 0xff) { p++; continue; } // libjpeg skips garbage before a marker
    const m = b[p + 1];
    if (m === 0xff) { p++; continue; }
    p += 2;
    if (m === 0xd9) { sawEOI = true; break; }
    if (m >= 0xd0 && m <= 0xd7) continue;
    if (p + 2 > b.length) fail("JPEG truncated inside a marker");
    const len = (b[p] << 8) | b[p + 1];
    const seg = b.subarray(p + 2, p + len);
    if (p + len > b.length || len < 2) fail(`JPEG truncated: marker 0x${m.toString(16)} segment of ${len} bytes runs past the end`);
    p += len;
    if (m === 0xdb) { // DQT
      for (let i = 0; i < seg.length;) {
        const pq = seg[i] >> 4, tq = seg[i] & 15; i++;
        const t = new Int32Array(64);
        for (let k = 0; k < 64; k++) { t[NATURAL[k]] = pq ? (seg[i] << 8) | seg[i + 1] : seg[i]; i += pq ? 2 : 1; }
        qt[tq] = t;
      }
    } else if (m === 0xc4) { // DHT
      for (let i = 0; i < seg.length;) {
        const tc = seg[i] >> 4, th = seg[i] & 15;
        const counts = seg.subarray(i + 1, i + 17);
        const n = counts.reduce((s, c) => s + c, 0);
        const h = buildHuffman(counts, seg.slice(i + 17, i + 17 + n));
        (tc === 0 ? dcTables : acTables)[th] = h;
        i += 17 + n;
      }
    } else if (m === 0xdd) { // DRI
      restartInterval = (seg[0] << 8) | seg[1];
    } else if (m === 0xee && seg.length >= 12 && String.fromCharCode(...seg.subarray(0, 5)) === "Adobe") {
      adobeTransform = seg[11];
    } else if (m === 0xc0 || m === 0xc1 || m === 0xc2) { // SOF0/1/2
      progressive = m === 0xc2;
      if (seg[0] !== 8) fail(`unsupported JPEG sample precision ${seg[0]} bits (only 8)`);
      height = (seg[1] << 8) | seg[2]; width = (seg[3] << 8) | seg[4];
      if (width === 0 || height === 0) fail(`JPEG has empty size ${width}x${height}`);
      checkImageSize(width, height, name, maxPixels);
      const nc = seg[5];
      if (nc !== 1 && nc !== 3 && nc !== 4) fail(`unsupported JPEG component count ${nc}`);
      comps = [];
      for (let c = 0; c < nc; c++) {
        const o = 6 + 3 * c;
        comps.push({ id: seg[o], h: seg[o + 1] >> 4, v: seg[o + 1] & 15, tq: seg[o + 2], bw: 0, bh: 0, bwPad: 0, bhPad: 0, coefs: new Int32Array(0), pred: 0 });
      }
      hmax = Math.max(...comps.map((c) => c.h)); vmax = Math.max(...comps.map((c) => c.v));
      if (comps.some((c) => c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4)) fail("invalid JPEG sampling factors");
      mcusX = Math.ceil(width / (8 * hmax)); mcusY = Math.ceil(height / (8 * vmax));
      for (const c of comps) {
        c.bw = Math.ceil(Math.ceil((width * c.h) / hmax) / 8); c.bh = Math.ceil(Math.ceil((height * c.v) / vmax) / 8);
        c.bwPad = mcusX * c.h; c.bhPad = mcusY * c.v;
        c.coefs = new Int32Array(c.bwPad * c.bhPad * 64);
      }
    } else if (m >= 0xc3 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      fail(`unsupported JPEG process (SOF marker 0x${m.toString(16)}: lossless, hierarchical or arithmetic coding)`);
    } else if (m === 0xda) { // SOS
      if (comps.length === 0) fail("JPEG scan before frame header");
      const ns = seg[0];
      const sc: Component[] = [];
      for (let i = 0; i < ns; i++) {
        const c = comps.find((x) => x.id === seg[1 + 2 * i]) ?? fail(`JPEG scan names unknown component ${seg[1 + 2 * i]}`);
        c.dc = dcTables[seg[2 + 2 * i] >> 4]; c.ac = acTables[seg[2 + 2 * i] & 15];
        sc.push(c);
      }
      const ss = seg[1 + 2 * ns], se = seg[2 + 2 * ns], ah = seg[3 + 2 * ns] >> 4, al = seg[3 + 2 * ns] & 15;
      // jdinput.c / jdphuff.c start_pass: the spectral range must make sense for the process.
      if (progressive ? ss > se || se > 63 || (ss === 0 && se !== 0) || al > 13 : ss !== 0 || se < 63) {
        fail(`JPEG scan has invalid spectral selection ${ss}..${se} / approximation ${ah},${al}`);
      }
      const end = segmentEnd(b, p);
      const br = new BitReader(b, p, end);
      for (const c of sc) {
        c.pred = 0;
        const needDc = !progressive || ss === 0, needAc = !progressive || ss > 0;
        if ((needDc && ah === 0 && !c.dc) || (needAc && !c.ac)) fail(`JPEG scan uses an undefined Huffman table`);
      }
      eobrun = 0;
      const decodeBlock = (c: Component, off: number): void => {
        const blk = c.coefs;
        if (!progressive) {
          const t = br.decode(c.dc!);
          c.pred += t ? br.extend(t) : 0;
          blk[off] = c.pred;
          for (let k = 1; k < 64; k++) {
            const rs = br.decode(c.ac!), s = rs & 15, r = rs >> 4;
            if (s === 0) { if (r < 15) break; k += 15; continue; }
            k += r;
            blk[off + NATURAL[k]] = br.extend(s);
          }
        } else if (ss === 0) { // DC scans
          if (ah === 0) { const t = br.decode(c.dc!); c.pred += t ? br.extend(t) : 0; blk[off] = c.pred * (1 << al); }
          else if (br.bit()) blk[off] |= 1 << al;
        } else if (ah === 0) { // AC first pass
          if (eobrun > 0) { eobrun--; return; }
          for (let k = ss; k <= se; k++) {
            const rs = br.decode(c.ac!), s = rs & 15, r = rs >> 4;
            if (s === 0) {
              if (r < 15) { eobrun = (1 << r) - 1 + (r ? br.bits(r) : 0); break; }
              k += 15; continue;
            }
            k += r;
            blk[off + NATURAL[k]] = br.extend(s) * (1 << al);
          }
        } else { // AC refinement, jdphuff.c decode_mcu_AC_refine
          const p1 = 1 << al, m1 = -1 << al;
          let k = ss;
          const refine = (idx: number): void => {
            if (br.bit() && (blk[idx] & p1) === 0) blk[idx] += blk[idx] >= 0 ? p1 : m1;
          };
          if (eobrun === 0) {
            for (; k <= se; k++) {
              const rs = br.decode(c.ac!);
              let r = rs >> 4, s = rs & 15;
              if (s) { s = br.bit() ? p1 : m1; }
              else if (r !== 15) { eobrun = 1 << r; if (r) eobrun += br.bits(r); break; }
              do {
                const idx = off + NATURAL[k];
                if (blk[idx] !== 0) refine(idx);
                else if (--r < 0) break;
                k++;
              } while (k <= se);
              if (s) blk[off + NATURAL[k]] = s;
            }
          }
          if (eobrun > 0) {
            for (; k <= se; k++) { const idx = off + NATURAL[k]; if (blk[idx] !== 0) refine(idx); }
            eobrun--;
          }
        }
      };
      let mcu = 0;
      const restartIfDue = (): void => {
        if (restartInterval && mcu > 0 && mcu % restartInterval === 0) {
          br.restart(); eobrun = 0; for (const c of sc) c.pred = 0;
        }
      };
      if (sc.length === 1) { // non-interleaved: one block per MCU over the component's real blocks
        const c = sc[0];
        for (let by = 0; by < c.bh; by++) for (let bx = 0; bx < c.bw; bx++, mcu++) {
          restartIfDue();
          decodeBlock(c, (by * c.bwPad + bx) * 64);
        }
      } else {
        for (let my = 0; my < mcusY; my++) for (let mx = 0; mx < mcusX; mx++, mcu++) {
          restartIfDue();
          for (const c of sc) for (let v = 0; v < c.v; v++) for (let h = 0; h < c.h; h++) {
            decodeBlock(c, ((my * c.v + v) * c.bwPad + mx * c.h + h) * 64);
          }
        }
      }
      if (br.pos >= b.length) fail("JPEG truncated inside scan data");
      sawScan = true;
      p = end;
    }
  }
  if (!sawScan) fail("JPEG has no image data (no scan)");
  if (!sawEOI) fail("JPEG truncated: file ends before the end-of-image marker");
  for (const c of comps) if (!qt[c.tq]) fail(`JPEG component ${c.id} uses undefined quantization table ${c.tq}`);

  // Inverse DCT + upsampling per component to full-size planes.
  const planes = comps.map((c) => upsample(c, idctComponent(c, qt[c.tq]), width, height, hmax, vmax, name));
  return { width, height, ...colorConvert(planes, width * height, adobeTransform) };
}

// jidctint.c constants: FIX(x) = round(x * 2^13).
const F0_298 = 2446, F0_390 = 3196, F0_541 = 4433, F0_765 = 6270, F0_899 = 7373, F1_175 = 9633,
  F1_501 = 12299, F1_847 = 15137, F1_961 = 16069, F2_053 = 16819, F2_562 = 20995, F3_072 = 25172;

/** libjpeg DESCALE: round by adding half then arithmetic shift (floor division keeps it exact past 32 bits). */
function descale(x: number, n: number): number { return Math.floor((x + 2 ** (n - 1)) / 2 ** n); }

/** `range_limit[x & RANGE_MASK]` of the post-IDCT table (jdmaster.c prepare_range_limit_table). */
function rangeLimit(x: number): number {
  const i = ((x % 1024) + 1024) % 1024;
  return i < 128 ? i + 128 : i < 512 ? 255 : i < 896 ? 0 : i - 896;
}

/** jpeg_idct_islow on every block of a component; returns the padded sample plane. */
function idctComponent(c: Component, q: Int32Array): Uint8Array {
  const W = c.bwPad * 8;
  const out = new Uint8Array(W * c.bhPad * 8);
  const ws = new Float64Array(64);
  const co = c.coefs;
  for (let by = 0; by < c.bhPad; by++) for (let bx = 0; bx < c.bwPad; bx++) {
    const off = (by * c.bwPad + bx) * 64;
    for (let col = 0; col < 8; col++) { // pass 1: columns, dequantising on the way
      const d = (k: number): number => co[off + k * 8 + col] * q[k * 8 + col];
      let z2 = d(2), z3 = d(6);
      let z1 = (z2 + z3) * F0_541;
      let tmp2 = z1 - z3 * F1_847, tmp3 = z1 + z2 * F0_765;
      z2 = d(0); z3 = d(4);
      let tmp0 = (z2 + z3) * 8192, tmp1 = (z2 - z3) * 8192;
      const t10 = tmp0 + tmp3, t13 = tmp0 - tmp3, t11 = tmp1 + tmp2, t12 = tmp1 - tmp2;
      tmp0 = d(7); tmp1 = d(5); tmp2 = d(3); tmp3 = d(1);
      z1 = tmp0 + tmp3; z2 = tmp1 + tmp2; z3 = tmp0 + tmp2; let z4 = tmp1 + tmp3;
      const z5 = (z3 + z4) * F1_175;
      tmp0 *= F0_298; tmp1 *= F2_053; tmp2 *= F3_072; tmp3 *= F1_501;
      z1 *= -F0_899; z2 *= -F2_562; z3 = z3 * -F1_961 + z5; z4 = z4 * -F0_390 + z5;
      tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4;
      ws[col] = descale(t10 + tmp3, 11); ws[56 + col] = descale(t10 - tmp3, 11);
      ws[8 + col] = descale(t11 + tmp2, 11); ws[48 + col] = descale(t11 - tmp2, 11);
      ws[16 + col] = descale(t12 + tmp1, 11); ws[40 + col] = descale(t12 - tmp1, 11);
      ws[24 + col] = descale(t13 + tmp0, 11); ws[32 + col] = descale(t13 - tmp0, 11);
    }
    for (let row = 0; row < 8; row++) { // pass 2: rows, descale by CONST_BITS + PASS1_BITS + 3
      const w = row * 8;
      let z2 = ws[w + 2], z3 = ws[w + 6];
      let z1 = (z2 + z3) * F0_541;
      let tmp2 = z1 - z3 * F1_847, tmp3 = z1 + z2 * F0_765;
      let tmp0 = (ws[w] + ws[w + 4]) * 8192, tmp1 = (ws[w] - ws[w + 4]) * 8192;
      const t10 = tmp0 + tmp3, t13 = tmp0 - tmp3, t11 = tmp1 + tmp2, t12 = tmp1 - tmp2;
      tmp0 = ws[w + 7]; tmp1 = ws[w + 5]; tmp2 = ws[w + 3]; tmp3 = ws[w + 1];
      z1 = tmp0 + tmp3; z2 = tmp1 + tmp2; z3 = tmp0 + tmp2; let z4 = tmp1 + tmp3;
      const z5 = (z3 + z4) * F1_175;
      tmp0 *= F0_298; tmp1 *= F2_053; tmp2 *= F3_072; tmp3 *= F1_501;
      z1 *= -F0_899; z2 *= -F2_562; z3 = z3 * -F1_961 + z5; z4 = z4 * -F0_390 + z5;
      tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4;
      const o = (by * 8 + row) * W + bx * 8;
      out[o] = rangeLimit(descale(t10 + tmp3, 18)); out[o + 7] = rangeLimit(descale(t10 - tmp3, 18));
      out[o + 1] = rangeLimit(descale(t11 + tmp2, 18)); out[o + 6] = rangeLimit(descale(t11 - tmp2, 18));
      out[o + 2] = rangeLimit(descale(t12 + tmp1, 18)); out[o + 5] = rangeLimit(descale(t12 - tmp1, 18));
      out[o + 3] = rangeLimit(descale(t13 + tmp0, 18)); out[o + 4] = rangeLimit(descale(t13 - tmp0, 18));
    }
  }
  return out;
}

/** Bring one component plane to full image size the way jdsample.c does. */
function upsample(c: Component, plane: Uint8Array, width: number, height: number, hmax: number, vmax: number, name: string): Uint8Array {
  const pw = c.bwPad * 8;
  const dw = Math.ceil((width * c.h) / hmax), dh = Math.ceil((height * c.v) / vmax); // downsampled size
  const out = new Uint8Array(width * height);
  const at = (x: number, y: number): number => plane[Math.min(Math.max(y, 0), dh - 1) * pw + x]; // edge rows duplicated
  const hr = hmax / c.h, vr = vmax / c.v;
  if (hr === 1 && vr === 1) {
    for (let y = 0; y < height; y++) out.set(plane.subarray(y * pw, y * pw + width), y * width);
  } else if (hr === 2 && vr === 1 && dw > 2) { // h2v1_fancy_upsample
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
      const i = x >> 1, v = at(i, y) * 3;
      out[y * width + x] = x & 1
        ? (i === dw - 1 ? at(i, y) : (v + at(i + 1, y) + 2) >> 2)
        : (i === 0 ? at(i, y) : (v + at(i - 1, y) + 1) >> 2);
    }
  } else if (hr === 1 && vr === 2) { // h1v2_fancy_upsample: bias 1 for the upper, 2 for the lower output row
    for (let y = 0; y < height; y++) {
      const j = y >> 1, lower = y & 1, nb = lower ? j + 1 : j - 1;
      for (let x = 0; x < width; x++) out[y * width + x] = (at(x, j) * 3 + at(x, nb) + (lower ? 2 : 1)) >> 2;
    }
  } else if (hr === 2 && vr === 2 && dw > 2) { // h2v2_fancy_upsample
    for (let y = 0; y < height; y++) {
      const j = y >> 1, nb = y & 1 ? j + 1 : j - 1;
      const colsum = (i: number): number => at(i, j) * 3 + at(i, nb);
      for (let x = 0; x < width; x++) {
        const i = x >> 1, t = colsum(i);
        out[y * width + x] = x & 1
          ? (i === dw - 1 ? (t * 4 + 7) >> 4 : (t * 3 + colsum(i + 1) + 7) >> 4)
          : (i === 0 ? (t * 4 + 8) >> 4 : (t * 3 + colsum(i - 1) + 8) >> 4);
      }
    }
  } else if (Number.isInteger(hr) && Number.isInteger(vr)) { // int_upsample / h2v1, h2v2 plain
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[y * width + x] = plane[Math.floor(y / vr) * pw + Math.floor(x / hr)];
  } else {
    throw new Error(`${name}: unsupported JPEG sampling ratio ${hmax}x${vmax} : ${c.h}x${c.v} (fractional upsampling)`);
  }
  return out;
}

/** jdcolor.c conversions with its SCALEBITS 16 fixed-point tables (build_ycc_rgb_table). */
function colorConvert(planes: Uint8Array[], n: number, adobeTransform: number): { channels: number; data: Uint8Array } {
  if (planes.length === 1) return { channels: 1, data: planes[0] };
  const FIX = (x: number): number => Math.floor(x * 65536 + 0.5);
  const half = 1 << 15;
  const crR = (cr: number): number => (FIX(1.402) * (cr - 128) + half) >> 16;
  const cbB = (cb: number): number => (FIX(1.772) * (cb - 128) + half) >> 16;
  const g = (cb: number, cr: number): number => (-FIX(0.34414) * (cb - 128) + half + -FIX(0.71414) * (cr - 128)) >> 16;
  const clamp = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);
  if (planes.length === 3) {
    // Three components are YCbCr unless Adobe transform 0 says RGB (jdapimin.c default_decompress_parms;
    // JFIF/component-id heuristics agree for ordinary files).
    const [Y, Cb, Cr] = planes;
    const data = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      if (adobeTransform === 0) { data[3 * i] = Y[i]; data[3 * i + 1] = Cb[i]; data[3 * i + 2] = Cr[i]; continue; }
      const y = Y[i], cb = Cb[i], cr = Cr[i];
      data[3 * i] = clamp(y + crR(cr)); data[3 * i + 1] = clamp(y + g(cb, cr)); data[3 * i + 2] = clamp(y + cbB(cb));
    }
    return { channels: 3, data };
  }
  const data = new Uint8Array(n * 4);
  const ycck = adobeTransform === 2;
  for (let i = 0; i < n; i++) {
    if (ycck) { // ycck_cmyk_convert: YCC → RGB, then complemented
      const y = planes[0][i], cb = planes[1][i], cr = planes[2][i];
      data[4 * i] = clamp(255 - (y + crR(cr))); data[4 * i + 1] = clamp(255 - (y + g(cb, cr))); data[4 * i + 2] = clamp(255 - (y + cbB(cb)));
    } else {
      data[4 * i] = planes[0][i]; data[4 * i + 1] = planes[1][i]; data[4 * i + 2] = planes[2][i];
    }
    data[4 * i + 3] = planes[3][i];
  }
  return { channels: 4, data };
}

/**
 * CMYK samples as libjpeg returns them → RGB as Pillow gives after `convert("RGB")`.
 * Pillow reads every CMYK JPEG with rawmode "CMYK;I" (JpegImagePlugin.py: "assume adobe
 * conventions"), i.e. each sample inverted, then Convert.c `cmyk2rgb`:
 * nk = 255 - K; out = CLIP8(nk - MULDIV255(c, nk)) with MULDIV255(a, b) = ((a*b+128) >> 8 + a*b+128) >> 8.
 */
export function cmykToRgbPIL(cmyk: Uint8Array, n: number): Uint8Array {
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const nk = cmyk[4 * i + 3]; // 255 - (255 - K)
    for (let ch = 0; ch < 3; ch++) {
      const c = 255 - cmyk[4 * i + ch];
      const t = c * nk + 128;
      const v = nk - (((t >> 8) + t) >> 8);
      rgb[3 * i + ch] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return rgb;
}
