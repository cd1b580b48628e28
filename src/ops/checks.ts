// Argument checks of the Backend interface's data ops (src/ops/backend.ts), shared by every
// backend so that a bad call gets the same message whichever backend runs it.
import type { EmbeddingWeights, Tensor } from "./backend.js";

/** Number of values of `shape`; every dimension a non-negative integer. */
export function shapeSize(shape: readonly number[], op: string): number {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${op}: bad shape [${shape.join(", ")}]`);
  }
  return shape.reduce((a, b) => a * b, 1);
}

/** An embedding table's size, value count and dtype agree. */
export function checkEmbeddingWeights(w: EmbeddingWeights): void {
  if (!(Number.isInteger(w.rows) && w.rows > 0 && Number.isInteger(w.cols) && w.cols > 0)) {
    throw new Error(`embedding: bad table size [${w.rows}, ${w.cols}]`);
  }
  if (w.data.length !== w.rows * w.cols) {
    throw new Error(`embedding: table has ${w.data.length} values, expected [${w.rows}, ${w.cols}]`);
  }
  if ((w.dtype === "f32") !== (w.data instanceof Float32Array)) {
    throw new Error(`embedding: dtype ${w.dtype} does not match its ${w.data.constructor.name} data`);
  }
}

/** gather: each id is a row of a table of `rows` rows. */
export function checkGatherIds(ids: ArrayLike<number>, rows: number): void {
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= rows) {
      throw new Error(`gather: id ${id} at position ${t} is outside the table's rows [0, ${rows})`);
    }
  }
}

/** gatherRows: each index is a row of x's [R, cols] view. */
export function checkRowIndices(rows: readonly number[], R: number): void {
  for (const r of rows) {
    if (!Number.isInteger(r) || r < 0 || r >= R) throw new Error(`gatherRows: row ${r} is outside 0..${R - 1}`);
  }
}

/** sliceColumns: columns start..start+width−1 exist in a row of W. */
export function checkColumnRange(start: number, width: number, W: number): void {
  if (!(Number.isInteger(start) && Number.isInteger(width) && start >= 0 && width > 0 && start + width <= W)) {
    throw new Error(`sliceColumns: columns ${start}..${start + width - 1} are outside 0..${W - 1}`);
  }
}

/** sliceRows: rows start..start+n−1 of x's leading dimension exist. Returns values per row. */
export function checkRowRange(x: Tensor, start: number, n: number): number {
  const lead = x.shape[0];
  if (!(Number.isInteger(start) && Number.isInteger(n) && start >= 0 && n >= 0 && start + n <= lead)) {
    throw new Error(`sliceRows: rows ${start}..${start + n - 1} are outside 0..${lead - 1}`);
  }
  return lead === 0 ? 0 : x.size / lead;
}

/** writeRows: src's rows have dst's row shape and land inside dst. Returns values per row. */
export function checkWriteRows(dst: Tensor, start: number, src: Tensor): number {
  const lead = dst.shape[0];
  if (dst.shape.slice(1).join(",") !== src.shape.slice(1).join(",")) {
    throw new Error(`writeRows: src [${src.shape.join(", ")}] rows do not match dst [${dst.shape.join(", ")}]`);
  }
  const n = src.shape[0];
  if (!(Number.isInteger(start) && start >= 0 && start + n <= lead)) {
    throw new Error(`writeRows: rows ${start}..${start + n - 1} are outside dst's 0..${lead - 1}`);
  }
  return lead === 0 ? 0 : dst.size / lead;
}

/** imagePixels: the sizes are positive integers and rgb holds width·height RGB pixels. */
export function checkImagePixels(rgb: Uint8Array, width: number, height: number, size: number): void {
  for (const [name, v] of [["width", width], ["height", height], ["size", size]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`imagePixels: ${name} must be a positive integer, got ${v}`);
  }
  if (rgb.length !== width * height * 3) {
    throw new Error(`imagePixels: ${rgb.length} bytes of RGB, expected ${width}×${height}×3 = ${width * height * 3}`);
  }
}

/** patchRows: x is [C, H, W] with H and W multiples of P. Returns [C, H, W]. */
export function checkPatchRows(x: Tensor, P: number): [number, number, number] {
  const [C, H, W] = x.shape;
  if (x.shape.length !== 3 || !Number.isInteger(P) || P < 1 || H % P !== 0 || W % P !== 0) {
    throw new Error(`patchRows: x [${x.shape.join(", ")}] must be [C, H, W] with H and W multiples of the patch size ${P}`);
  }
  return [C, H, W];
}
