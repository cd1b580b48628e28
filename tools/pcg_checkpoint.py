#!/usr/bin/env python3
"""Write the PCG64 checkpoint of tools/pcg-checkpoint.ts byte for byte, with numpy only.

    python3 tools/pcg_checkpoint.py PLAN.json OUT_DIR [--seed N]

PLAN.json comes from `npx node dist/tools/pcg-checkpoint.js --config full --out DIR --plan PLAN.json`
(shards, tensors with dtype/shape/fill, and the small JSON files as exact text). The values are
defined in tools/pcg-checkpoint.ts's header; this file is the second, independent implementation:
numpy's own PCG64 (random_raw, whose bits numpy keeps stable across versions) set to the stream's
explicit (state, inc), and the same exactly rounded double -> binary16 conversion, vectorised.
Prints the SHA-256 of every shard, in the same format as the TypeScript writer.
"""
import hashlib, json, os, struct, sys, time
import numpy as np
from numpy.random import PCG64

SLICE_ELEMS = 1 << 22  # a multiple of 4, as in pcg-checkpoint.ts


def stream(seed, name):
    """SHA-256 of f"{seed}/{name}": state = bytes 0-15, inc = bytes 16-31 | 1, big-endian."""
    d = hashlib.sha256(f"{seed}/{name}".encode("utf-8")).digest()
    bg = PCG64()
    st = bg.state
    st["state"] = {"state": int.from_bytes(d[:16], "big"), "inc": int.from_bytes(d[16:], "big") | 1}
    st["has_uint32"] = 0
    st["uinteger"] = 0
    bg.state = st
    return bg


def rne(y):
    f = np.floor(y)
    d = y - f
    return np.where(d > 0.5, f + 1, np.where(d < 0.5, f, f + np.mod(f, 2)))


def f16_rne(x):
    """float64 array -> binary16 bits, rounded once, ties to even (mirrors f16RNE in TS)."""
    x = np.asarray(x, dtype=np.float64)
    sign = np.where(np.signbit(x), 0x8000, 0).astype(np.int64)
    a = np.abs(x)
    m, ex = np.frexp(a)  # a = m * 2^ex, m in [0.5, 1): exponent e = ex - 1
    e = ex.astype(np.int64) - 1
    q = rne(a * np.ldexp(1.0, (10 - e).clip(-1000, 1000)))
    bump = q == 2048
    e = np.where(bump, e + 1, e)
    q = np.where(bump, 1024, q)
    normal = sign | ((e + 15) << 10) | (q.astype(np.int64) - 1024)
    sub = sign | rne(a * 2.0**24).astype(np.int64)
    out = np.where(a < 2.0**-14, sub, normal)
    out = np.where((a >= 65520) | (e > 15), sign | 0x7C00, out)
    out = np.where(np.isnan(x), 0x7E00, out)
    return out.astype(np.uint16)


_levels = {}


def f16_levels(mean, half_width):
    key = (mean, half_width)
    if key not in _levels:
        k = np.arange(65536, dtype=np.float64)
        _levels[key] = f16_rne(mean + half_width * ((2.0 * k + 1.0) / 65536.0 - 1.0))
    return _levels[key]


DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "I32": 4}


def tensor_slices(t, seed):
    n = int(np.prod(t["shape"], dtype=np.int64))
    f = t["fill"]
    rng = stream(seed, t["name"]) if f["kind"] in ("float", "random-u32", "q4-centred") else None
    for start in range(0, n, SLICE_ELEMS):
        count = min(SLICE_ELEMS, n - start)
        if f["kind"] == "float":
            assert t["dtype"] == "F16", f"{t['name']}: float fill in {t['dtype']}"
            table = f16_levels(f["init"]["mean"], f["init"]["halfWidth"])
            idx = rng.random_raw((count + 3) // 4).astype("<u8").view("<u2")[:count]
            yield table[idx].astype("<u2").tobytes()
        elif f["kind"] in ("random-u32", "q4-centred"):
            w = rng.random_raw((count + 1) // 2).astype("<u8").view("<u4")[:count]
            if f["kind"] == "q4-centred":  # a nibble drawn as 0 becomes 8 (pcg-checkpoint.ts)
                nz = (w | (w >> 1) | (w >> 2) | (w >> 3)) & np.uint32(0x11111111)
                w = w | ((~nz & np.uint32(0x11111111)) << np.uint32(3))
            yield w.astype("<u4").tobytes()
        elif f["kind"] == "const-u32":
            yield np.full(count, f["value"] & 0xFFFFFFFF, dtype="<u4").tobytes()
        elif f["kind"] == "g-idx":
            yield ((np.arange(start, start + count, dtype=np.int64) // f["groupSize"]).astype("<i4")).tobytes()
        else:
            raise ValueError(f"{t['name']}: unknown fill {f['kind']}")


def encode_header(tensors, metadata):
    """src/io/safetensors.ts encodeHeader: JSON.stringify order, padded with spaces to 8 bytes."""
    obj = {"__metadata__": metadata}
    pos = 0
    for t in tensors:
        nbytes = int(np.prod(t["shape"], dtype=np.int64)) * DTYPE_BYTES[t["dtype"]]
        obj[t["name"]] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [pos, pos + nbytes]}
        pos += nbytes
    raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    padded = (len(raw) + 7) // 8 * 8
    return struct.pack("<Q", padded) + raw + b" " * (padded - len(raw))


def write_checkpoint(plan, out, seed, log=None):
    os.makedirs(out, exist_ok=True)
    result = []
    for s in plan["shards"]:
        h = hashlib.sha256()
        nbytes = 0
        with open(os.path.join(out, s["file"]), "wb") as fh:
            for b in [encode_header(s["tensors"], plan["metadata"])]:
                h.update(b); fh.write(b); nbytes += len(b)
            for t in s["tensors"]:
                if log:
                    log(t["name"])
                for b in tensor_slices(t, seed):
                    h.update(b); fh.write(b); nbytes += len(b)
        result.append((s["file"], h.hexdigest(), nbytes))
    for name, text in plan["textFiles"].items():
        with open(os.path.join(out, name), "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return result


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: pcg_checkpoint.py PLAN.json OUT_DIR [--seed N]")
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    with open(argv[0], encoding="utf-8") as fh:
        plan = json.load(fh)
    t0 = time.time()
    for file, sha, nbytes in write_checkpoint(plan, argv[1], seed):
        print(f"{sha}  {file}  {nbytes}")
    print(f"seed {seed}: {len(plan['shards'])} shard(s) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
