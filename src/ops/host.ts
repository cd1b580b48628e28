// Host tensors: the storage of the CPU backends (reference/, src/ops/wasm/) is a plain Float32Array.
// This file holds what those backends share — reading a host tensor synchronously (hostData), and
// the data-movement ops of the Backend interface (fromHost, zeros, read, gather, slices, patchRows,
// writeRows, checkFinite), which on a CPU are plain typed-array copies, and imagePixels, which on a
// CPU is src/image/'s own resize and normalisation. The math ops stay per backend.
//
// A GPU backend has its own versions of all of these (src/ops/webgpu/): nothing here may be used
// by the model graph, which sees only the Backend interface.
import {
  Tensor, type Embedding, type EmbeddingWeights, type ZerosOptions,
} from "./backend.js";
import { bf16ArrayToF32, f16ArrayToF32 } from "../io/fp16.js";
import { assertFinite } from "../io/finite.js";
import {
  checkColumnRange, checkEmbeddingWeights, checkGatherIds, checkImagePixels, checkPatchRows, checkRowIndices, checkRowRange,
  checkWriteRows, shapeSize,
} from "./checks.js";
import { resizeBicubicPIL } from "../image/resize.js";
import { normalizeCLIP } from "../image/preprocess.js";

/** A tensor whose storage is host memory. */
export type HostTensor = Tensor<Float32Array>;

/**
 * The values of a host tensor, without a copy (the backend's own storage: do not modify).
 * For CPU backends and their tests; a device tensor is an error naming what to use instead.
 */
export function hostData(t: Tensor): Float32Array {
  if (!(t.storage instanceof Float32Array)) {
    throw new Error(`hostData: this tensor [${t.shape.join(", ")}] lives on a device; read it with await backend.read(t)`);
  }
  return t.storage;
}

/** A host tensor over `data` (no copy). */
export function hostTensor(data: Float32Array, shape: readonly number[]): HostTensor {
  return new Tensor(shape, data);
}

class HostEmbedding implements Embedding {
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly dtype: EmbeddingWeights["dtype"],
    readonly data: Float32Array | Uint16Array,
  ) {}
}

/**
 * The data ops of a CPU backend. Subclasses provide `alloc` (fresh output storage, which the WASM
 * backend recycles through release) and may override zeros/release for long-lived storage.
 */
export abstract class HostBackendBase {
  /** Output storage of n floats (contents unspecified: callers overwrite every value). */
  protected alloc(n: number): Float32Array {
    return new Float32Array(n);
  }

  fromHost(data: Float32Array, shape: readonly number[]): Tensor {
    const n = shapeSize(shape, "fromHost");
    if (data.length !== n) throw new Error(`fromHost: shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
    const out = this.alloc(n);
    out.set(data);
    return new Tensor(shape, out);
  }

  zeros(shape: readonly number[], _options?: ZerosOptions): Tensor {
    const n = shapeSize(shape, "zeros");
    const out = this.alloc(n);
    out.fill(0);
    return new Tensor(shape, out);
  }

  imagePixels(rgb: Uint8Array, width: number, height: number, size: number): Tensor {
    checkImagePixels(rgb, width, height, size);
    return this.fromHost(normalizeCLIP(resizeBicubicPIL(rgb, width, height, size, size), size), [3, size, size]);
  }

  read(t: Tensor): Promise<Float32Array> {
    // A copy now: the caller may release t (and the backend reuse its storage) right after.
    return Promise.resolve(hostData(t).slice());
  }

  checkFinite(t: Tensor, what: string): void {
    assertFinite(hostData(t), what);
  }

  embedding(w: EmbeddingWeights): Embedding {
    checkEmbeddingWeights(w);
    return new HostEmbedding(w.rows, w.cols, w.dtype, w.data);
  }

  gather(table: Embedding, ids: ArrayLike<number>): Tensor {
    if (!(table instanceof HostEmbedding)) throw new Error("gather: the Embedding was not made by this backend");
    checkGatherIds(ids, table.rows);
    const C = table.cols;
    const out = this.alloc(ids.length * C);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      const row = table.data.subarray(id * C, (id + 1) * C);
      const dst = out.subarray(t * C, (t + 1) * C);
      if (table.dtype === "f16") f16ArrayToF32(row as Uint16Array, dst);
      else if (table.dtype === "bf16") bf16ArrayToF32(row as Uint16Array, dst);
      else dst.set(row);
    }
    return new Tensor([ids.length, C], out);
  }

  gatherRows(x: Tensor, rows: readonly number[]): Tensor {
    const d = hostData(x), C = x.cols;
    checkRowIndices(rows, x.rows);
    const out = this.alloc(rows.length * C);
    rows.forEach((r, i) => {
      out.set(d.subarray(r * C, (r + 1) * C), i * C);
    });
    return new Tensor([rows.length, C], out);
  }

  sliceColumns(x: Tensor, start: number, width: number): Tensor {
    const d = hostData(x), T = x.rows, W = x.cols;
    checkColumnRange(start, width, W);
    // One row (decode): a view, no copy. Views are never released into reuse (release ignores them).
    if (T === 1) return new Tensor([1, width], d.subarray(start, start + width));
    const out = this.alloc(T * width);
    for (let t = 0; t < T; t++) out.set(d.subarray(t * W + start, t * W + start + width), t * width);
    return new Tensor([T, width], out);
  }

  sliceRows(x: Tensor, start: number, n: number): Tensor {
    const d = hostData(x);
    const row = checkRowRange(x, start, n);
    return new Tensor([n, ...x.shape.slice(1)], d.subarray(start * row, (start + n) * row));
  }

  patchRows(x: Tensor, P: number): Tensor {
    const [C, H, W] = checkPatchRows(x, P);
    const d = hostData(x);
    const GH = H / P, GW = W / P, L = C * P * P;
    const out = this.alloc(GH * GW * L);
    for (let py = 0; py < GH; py++) {
      for (let px = 0; px < GW; px++) {
        const base = (py * GW + px) * L;
        for (let c = 0; c < C; c++) {
          for (let ky = 0; ky < P; ky++) {
            const src = c * H * W + (py * P + ky) * W + px * P;
            out.set(d.subarray(src, src + P), base + (c * P + ky) * P);
          }
        }
      }
    }
    return new Tensor([GH * GW, L], out);
  }

  writeRows(dst: Tensor, start: number, src: Tensor): void {
    const row = checkWriteRows(dst, start, src);
    hostData(dst).set(hostData(src), start * row);
  }
}
