#!/usr/bin/python3
"""Generate the extra image fixtures in test/fixtures/images-extra/ and their Pillow goldens.

Each image FILE gets FILE.msgpack in the conformance format
  {meta: {...}, tensors: {NAME: {dtype: "u8"|"f32", shape, data: bytes}}}
with
  rgb          [H,W,3]   Image.open(FILE).convert("RGB")
  up           [UH,UW,3] rgb resized with Image.BICUBIC to an upscaled odd size
  down         [DH,DW,3] rgb resized with Image.BICUBIC to a downscaled odd size
  exif_rgb     [..,3]    ImageOps.exif_transpose(Image.open(FILE)).convert("RGB") (only for EXIF files)
and clip-normalize.msgpack holds the torchvision ToTensor+Normalize value for every byte, computed
in float32 with numpy exactly like torch: (float32(v)/255 - float32(mean)) / float32(std).

Images come from three writers: Pillow itself (CMYK, progressive, grayscale JPEG, GIF, BMP),
a small PNG writer below (every colour type / bit depth / interlace / tRNS, which Pillow cannot all
write), and a small baseline JPEG writer below for the 4-component layouts Pillow cannot write
(YCCK, subsampled CMYK, restart intervals). Pillow then decodes every file: its pixels are the goldens.

Run with Debian's python3 and python3-pil python3-numpy python3-msgpack installed:
  /usr/bin/python3 tools/make-image-goldens.py
"""
import io, os, struct, sys, zlib
import numpy as np
import msgpack
import PIL
from PIL import Image, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "images-extra")
W, H = 37, 29          # odd sizes: partial MCUs and partial 2x2 groups everywhere
UP, DOWN = (53, 41), (13, 9)


def picture(w=W, h=H, seed=0):
    """A smooth gradient plus a few hard edges and noise, so every filter and coefficient matters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / (w - 1)
    g = 255 * y / (h - 1)
    b = 128 + 100 * np.sin(x / 3.0) * np.cos(y / 4.0)
    img = np.stack([r, g, b], -1)
    img[(x > w / 2) & (y < h / 3)] = [250, 20, 30]
    img[(x < w / 4) & (y > h / 2)] = [10, 240, 200]
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- PNG writer
def png_chunk(t, data):
    c = struct.pack(">I", len(data)) + t + data
    return c + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def pack_rows(samples, depth):
    """samples: [h][n] ints → bytes per row, MSB first for depth < 8, big-endian for 16."""
    rows = []
    for row in samples:
        if depth == 16:
            rows.append(b"".join(struct.pack(">H", int(v)) for v in row))
        elif depth == 8:
            rows.append(bytes(int(v) for v in row))
        else:
            per = 8 // depth
            out = bytearray()
            for i in range(0, len(row), per):
                byte = 0
                for j in range(per):
                    v = int(row[i + j]) if i + j < len(row) else 0
                    byte |= v << (8 - depth * (j + 1))
                out.append(byte)
            rows.append(bytes(out))
    return rows


def write_png(path, arr, ctype, depth, palette=None, trns=None, interlace=False, exif=None):
    """arr: [h, w, channels] integer samples already at `depth` bits."""
    h, w = arr.shape[:2]
    ch = arr.shape[2]
    bpp = max(1, ch * depth // 8)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    ftype = 0
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        rows = pack_rows(sub.reshape(sub.shape[0], -1), depth)
        prev = bytes(len(rows[0]))
        for row in rows:
            ftype = (ftype + 1) % 5  # cycle through all five filters
            f = bytearray(row)
            for i in range(len(row)):
                a = row[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if ftype == 1: f[i] = (row[i] - a) & 255
                elif ftype == 2: f[i] = (row[i] - b) & 255
                elif ftype == 3: f[i] = (row[i] - (a + b) // 2) & 255
                elif ftype == 4:
                    p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                    f[i] = (row[i] - pr) & 255
            raw += bytes([ftype]) + bytes(f)
            prev = row
    z = zlib.compress(bytes(raw), 9)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if exif is not None:
        data += png_chunk(b"eXIf", exif)
    if palette is not None:
        data += png_chunk(b"PLTE", bytes(palette))
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    half = len(z) // 2  # two IDAT chunks, to exercise concatenation
    data += png_chunk(b"IDAT", z[:half]) + png_chunk(b"IDAT", z[half:]) + png_chunk(b"IEND", b"")
    open(path, "wb").write(data)


# ---------------------------------------------------------------- baseline JPEG writer
ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
          35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
# ITU-T T.81 Annex K table K.1 (luminance quantisation), used for every component at quality 50.
QTABLE = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
          18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
DCT = np.array([[(np.sqrt(0.5) if k == 0 else 1) * np.cos((2 * n + 1) * k * np.pi / 16) / 2 for n in range(8)] for k in range(8)])
DC_SYMS = list(range(12))
AC_SYMS = [0x00, 0xF0] + [(r << 4) | s for r in range(16) for s in range(1, 11)]


def flat_huffman(symbols, length):
    """Every symbol gets a code of the same length: valid, and simple to write."""
    counts = [0] * 16
    counts[length - 1] = len(symbols)
    return counts, symbols, {s: (i, length) for i, s in enumerate(symbols)}


class Bits:
    def __init__(self): self.out = bytearray(); self.acc = 0; self.n = 0
    def put(self, v, n):
        for i in range(n - 1, -1, -1):
            self.acc = (self.acc << 1) | ((v >> i) & 1); self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF: self.out.append(0)
                self.acc = 0; self.n = 0
    def flush(self):
        if self.n: self.put((1 << (8 - self.n)) - 1, 8 - self.n)


def write_jpeg(path, planes, factors, adobe_transform=None, restart=0):
    """planes: full-size uint8 [h, w] per component; factors: (h, v) per component. Baseline, 8-bit."""
    h, w = planes[0].shape
    hmax = max(f[0] for f in factors); vmax = max(f[1] for f in factors)
    mx, my = -(-w // (8 * hmax)), -(-h // (8 * vmax))
    comps = []
    for p, (fh, fv) in zip(planes, factors):
        # downsample by box averaging, then pad to whole MCUs by edge replication
        sh, sv = hmax // fh, vmax // fv
        dw, dh = -(-w * fh // hmax), -(-h * fv // vmax)
        big = np.pad(p.astype(np.float64), ((0, dh * sv - h), (0, dw * sh - w)), mode="edge")
        small = big.reshape(dh, sv, dw, sh).mean(axis=(1, 3))
        full = np.pad(small, ((0, my * fv * 8 - dh), (0, mx * fh * 8 - dw)), mode="edge")
        comps.append(full)
    dc_counts, dc_vals, dc_code = flat_huffman(DC_SYMS, 4)
    ac_counts, ac_vals, ac_code = flat_huffman(AC_SYMS, 8)
    bits = Bits()
    pred = [0] * len(comps)

    def category(v):
        return 0 if v == 0 else int(abs(v)).bit_length()

    def encode_block(ci, block):
        coef = DCT @ (block - 128) @ DCT.T
        q = np.rint(coef.flatten() / np.array(QTABLE)).astype(int)
        zz = [q[ZIGZAG[k]] for k in range(64)]
        diff = zz[0] - pred[ci]; pred[ci] = zz[0]
        s = category(diff); code, ln = dc_code[s]; bits.put(code, ln)
        if s: bits.put(diff if diff > 0 else diff + (1 << s) - 1, s)
        run = 0
        for k in range(1, 64):
            v = zz[k]
            if v == 0: run += 1; continue
            while run > 15: code, ln = ac_code[0xF0]; bits.put(code, ln); run -= 16
            s = category(v); code, ln = ac_code[(run << 4) | s]; bits.put(code, ln)
            bits.put(v if v > 0 else v + (1 << s) - 1, s); run = 0
        if run: code, ln = ac_code[0x00]; bits.put(code, ln)

    mcu = 0; rst = 0
    for yy in range(my):
        for xx in range(mx):
            if restart and mcu and mcu % restart == 0:
                bits.flush(); bits.out += bytes([0xFF, 0xD0 + rst]); rst = (rst + 1) % 8; pred = [0] * len(comps)
            for ci, (full, (fh, fv)) in enumerate(zip(comps, factors)):
                for v in range(fv):
                    for u in range(fh):
                        by, bx = (yy * fv + v) * 8, (xx * fh + u) * 8
                        encode_block(ci, full[by:by + 8, bx:bx + 8])
            mcu += 1
    bits.flush()

    def seg(marker, data): return bytes([0xFF, marker]) + struct.pack(">H", len(data) + 2) + data
    out = b"\xFF\xD8"
    if adobe_transform is not None:
        out += seg(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, adobe_transform))
    out += seg(0xDB, bytes([0]) + bytes(QTABLE[ZIGZAG[k]] for k in range(64)))
    out += seg(0xC0, struct.pack(">BHHB", 8, h, w, len(planes)) + b"".join(bytes([i + 1, (f[0] << 4) | f[1], 0]) for i, f in enumerate(factors)))
    out += seg(0xC4, bytes([0x00]) + bytes(dc_counts) + bytes(dc_vals) + bytes([0x10]) + bytes(ac_counts) + bytes(ac_vals))
    if restart:
        out += seg(0xDD, struct.pack(">H", restart))
    out += seg(0xDA, bytes([len(planes)]) + b"".join(bytes([i + 1, 0x00]) for i in range(len(planes))) + bytes([0, 63, 0]))
    out += bytes(bits.out) + b"\xFF\xD9"
    open(path, "wb").write(out)


# ---------------------------------------------------------------- goldens
def tensor(arr, dtype="u8"):
    a = np.ascontiguousarray(arr)
    return {"dtype": dtype, "shape": list(a.shape), "data": a.astype("<f4" if dtype == "f32" else np.uint8).tobytes()}


def zero_filled_palette_rgb(im):
    """convert("RGB") of a "P" image whose indices run past its palette, with the missing entries
    black: current Pillow allocates the palette zeroed (Palette.c ImagingPaletteNew uses calloc),
    while Pillow 9.4 pre-fills a grey ramp. Pillow's own result is version-dependent, so the golden
    pins the zero-filled one."""
    pal = np.zeros((256, 3), np.uint8)
    given = np.array(im.getpalette()[: 3 * (len(im.palette.palette) // 3)], np.uint8).reshape(-1, 3)
    pal[: len(given)] = given
    return Image.fromarray(pal[np.asarray(im)], "RGB")


def golden(fname, note, convert=None):
    path = os.path.join(OUT, fname)
    im = Image.open(path)
    fmt = im.format
    mode = im.mode
    rgb = convert(im) if convert else im.convert("RGB")
    t = {"rgb": tensor(np.asarray(rgb)),
         "up": tensor(np.asarray(rgb.resize(UP, Image.BICUBIC))),
         "down": tensor(np.asarray(rgb.resize(DOWN, Image.BICUBIC)))}
    exif = Image.open(path).getexif().get(0x0112)
    if exif:
        t["exif_rgb"] = tensor(np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")))
    meta = {"file": fname, "format": fmt, "pil_mode": mode, "size": list(im.size), "note": note,
            "pillow": PIL.__version__, "generator": "tools/make-image-goldens.py"}
    open(os.path.join(OUT, fname + ".msgpack"), "wb").write(msgpack.packb({"meta": meta, "tensors": t}, use_bin_type=True))
    print(f"{fname:28s} {fmt:5s} {mode:5s} {os.path.getsize(path):6d} bytes  {note}")


def main():
    os.makedirs(OUT, exist_ok=True)
    rgb = picture()
    pil = Image.fromarray(rgb)
    cases = []

    def save(fname, note, **kw):
        pil_img = kw.pop("img", pil)
        pil_img.save(os.path.join(OUT, fname), **kw)
        cases.append((fname, note))

    # JPEG written by Pillow (libjpeg-turbo encoder)
    save("progressive.jpg", "progressive RGB 4:2:0", quality=85, progressive=True)
    save("rgb-422.jpg", "baseline RGB 4:2:2", quality=90, subsampling=1)
    save("gray.jpg", "grayscale", img=pil.convert("L"), quality=90)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    # Pillow's RGB→CMYK has no black generation; add some K so the conversion is exercised.
    c = np.asarray(cmyk).copy(); c[..., 3] = (np.arange(W)[None, :] * 6) % 256
    cmyk = Image.fromarray(c, "CMYK")
    save("cmyk.jpg", "Adobe CMYK (inverted), baseline", img=cmyk, quality=90)
    save("cmyk-progressive.jpg", "Adobe CMYK, progressive with successive approximation", img=cmyk, quality=90, progressive=True)
    exif = Image.Exif(); exif[0x0112] = 6
    save("exif-rotate.jpg", "EXIF orientation 6", quality=90, exif=exif.tobytes())

    # JPEG layouts Pillow cannot write
    inv = 255 - c  # libjpeg-side CMYK samples (Adobe files store inverted ink)
    r, g, b = [255 - inv[..., i].astype(np.float64) for i in range(3)]
    yy = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    ycc = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (yy, cb, cr)]
    write_jpeg(os.path.join(OUT, "ycck-h2v2-rst.jpg"), ycc + [inv[..., 3]], [(2, 2), (1, 1), (1, 1), (2, 2)], adobe_transform=2, restart=2)
    cases.append(("ycck-h2v2-rst.jpg", "YCCK (Adobe transform 2), Cb/Cr 2x2 subsampled, restart interval 2"))
    write_jpeg(os.path.join(OUT, "cmyk-h2v1-noadobe.jpg"), [inv[..., i] for i in range(4)], [(2, 1), (1, 1), (1, 1), (2, 1)])
    cases.append(("cmyk-h2v1-noadobe.jpg", "CMYK without Adobe marker, M/Y 2x1 subsampled"))
    write_jpeg(os.path.join(OUT, "ycck-h1v2.jpg"), ycc + [inv[..., 3]], [(1, 2), (1, 1), (1, 1), (1, 2)], adobe_transform=2)
    cases.append(("ycck-h1v2.jpg", "YCCK, Cb/Cr 1x2 subsampled"))

    # PNG, every colour type and depth
    r16 = rgb.astype(np.uint16) * 257 + np.arange(W, dtype=np.uint16)[None, :, None]  # low byte differs from high byte
    alpha = ((np.arange(W)[None, :] * 7 + np.arange(H)[:, None] * 3) % 256).astype(np.uint16)
    gray = np.asarray(pil.convert("L")).astype(np.uint16)
    pal_idx = (gray // 17).astype(np.uint8)  # 16 levels
    palette = [v for i in range(16) for v in (i * 16, 255 - i * 16, (i * 53) % 256)]
    pngs = [
        ("rgb16.png", dict(arr=r16, ctype=2, depth=16), "16-bit RGB"),
        ("rgba16.png", dict(arr=np.dstack([r16, alpha * 257]), ctype=6, depth=16), "16-bit RGBA"),
        ("gray16.png", dict(arr=(gray * 3)[..., None], ctype=0, depth=16), "16-bit gray, values above 255 (Pillow mode I clamps)"),
        ("graya16.png", dict(arr=np.dstack([gray * 257 + 5, alpha * 257]), ctype=4, depth=16), "16-bit gray+alpha"),
        ("graya8.png", dict(arr=np.dstack([gray, alpha]), ctype=4, depth=8), "8-bit gray+alpha"),
        ("gray-trns.png", dict(arr=gray[..., None], ctype=0, depth=8, trns=struct.pack(">H", 128)), "8-bit gray with tRNS"),
        ("gray1.png", dict(arr=(gray > 128).astype(np.uint16)[..., None], ctype=0, depth=1), "1-bit gray"),
        ("gray2.png", dict(arr=(gray // 64)[..., None], ctype=0, depth=2), "2-bit gray"),
        ("gray4.png", dict(arr=(gray // 16)[..., None], ctype=0, depth=4), "4-bit gray"),
        ("pal4-trns.png", dict(arr=pal_idx[..., None], ctype=3, depth=4, palette=palette, trns=bytes(range(0, 160, 10))), "4-bit palette with tRNS"),
        ("pal8-short.png", dict(arr=pal_idx[..., None] + 8, ctype=3, depth=8, palette=palette), "8-bit palette, indices past the palette end"),
        ("rgb8-interlaced.png", dict(arr=rgb, ctype=2, depth=8, interlace=True), "8-bit RGB, Adam7 interlaced"),
        ("rgba8-interlaced.png", dict(arr=np.dstack([rgb, alpha.astype(np.uint8)]), ctype=6, depth=8, interlace=True), "8-bit RGBA, Adam7 interlaced"),
        ("tiny.png", dict(arr=picture(5, 3, seed=2), ctype=2, depth=8), "5x3 RGB, upscaled a lot"),
        ("exif-rotate.png", dict(arr=rgb, ctype=2, depth=8, exif=exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else exif.tobytes()), "EXIF orientation 6 in eXIf"),
    ]
    for fname, kw, note in pngs:
        write_png(os.path.join(OUT, fname), **kw)
        cases.append((fname, note))

    # GIF and BMP written by Pillow
    save("pal.gif", "GIF, 8-bit palette", img=pil.quantize(64))
    save("pal-interlaced.gif", "GIF, interlaced", img=pil.quantize(32), interlace=True)
    save("rgb24.bmp", "BMP 24-bit bottom-up", img=pil)
    save("pal8.bmp", "BMP 8-bit palette", img=pil.quantize(100))
    save("bw1.bmp", "BMP 1-bit", img=pil.convert("1"))

    for fname, note in cases:
        golden(fname, note, zero_filled_palette_rgb if fname == "pal8-short.png" else None)

    mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
    v = np.arange(256, dtype=np.float32) / np.float32(255)
    lut = (v[None, :] - mean[:, None]) / std[:, None]
    assert lut.dtype == np.float32
    open(os.path.join(OUT, "clip-normalize.msgpack"), "wb").write(msgpack.packb(
        {"meta": {"note": "(float32(v)/255 - mean[c]) / std[c] in float32 for v in 0..255", "numpy": np.__version__},
         "tensors": {"lut": tensor(lut, "f32")}}, use_bin_type=True))


if __name__ == "__main__":
    main()
