// Golden case files and the numbers we compare them with.
//
// A case file is msgpack: { meta: {...}, tensors: { NAME: { dtype: "f32"|"i32"|"u8", shape, data } } }
// (format: test/fixtures/tiny-a and the conformance README). Tensors come back as typed arrays.
import { readFileSync } from "node:fs";
import { unpack } from "msgpackr";

export type GoldenArray = Float32Array | Int32Array | Uint8Array;

export interface GoldenTensor {
  readonly dtype: "f32" | "i32" | "u8";
  readonly shape: readonly number[];
  readonly data: GoldenArray;
}

export interface GoldenCase {
  readonly file: string;
  readonly meta: Record<string, unknown>;
  readonly tensors: Record<string, GoldenTensor>;
}

/** Relative L2 error ‖a − b‖ / ‖b‖ of `actual` against `expected` (0 when both are zero). */
export function relL2(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new Error(`relL2: length ${actual.length} vs expected ${expected.length}`);
  }
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    num += (actual[i] - expected[i]) ** 2;
    den += expected[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Largest |a − b|. */
export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]));
  return m;
}

/** One compared tensor, as the conformance report prints it (llm.c's check_tensor). */
export interface TensorCheck {
  readonly name: string;
  readonly relL2: number;
  readonly maxAbs: number;
  readonly ok: boolean;
  readonly note?: string;
}

/** Default tolerance for float32 tensors against the PyTorch float32 goldens. */
export const REL_L2_TOLERANCE = 1e-4;

export function checkTensor(
  name: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance = REL_L2_TOLERANCE,
): TensorCheck {
  if (actual.length !== expected.length) {
    return { name, relL2: Infinity, maxAbs: Infinity, ok: false, note: `length ${actual.length} != ${expected.length}` };
  }
  const r = relL2(actual, expected);
  return { name, relL2: r, maxAbs: maxAbsDiff(actual, expected), ok: r < tolerance };
}

export function formatCheck(c: TensorCheck): string {
  const status = c.ok ? "ok  " : "FAIL";
  return `  ${status} ${c.name.padEnd(28)} rel_l2=${c.relL2.toExponential(3)}  max_abs=${c.maxAbs.toExponential(3)}${c.note ? "  " + c.note : ""}`;
}

function toTyped(name: string, file: string, raw: { dtype: string; shape: number[]; data: Uint8Array }): GoldenTensor {
  const bytes = raw.data;
  // Copy into a fresh, aligned buffer: msgpackr hands out views at arbitrary offsets.
  const buf = Uint8Array.from(bytes).buffer; // Buffer#slice would share the pool
  const n = raw.shape.reduce((a, b) => a * b, 1);
  let data: GoldenArray;
  switch (raw.dtype) {
    case "f32": data = new Float32Array(buf); break;
    case "i32": data = new Int32Array(buf); break;
    case "u8": data = new Uint8Array(buf); break;
    default: throw new Error(`${file}: tensor ${name} has unknown dtype ${JSON.stringify(raw.dtype)}`);
  }
  if (data.length !== n) {
    throw new Error(`${file}: tensor ${name} has ${data.length} values, shape [${raw.shape}] needs ${n}`);
  }
  return { dtype: raw.dtype as GoldenTensor["dtype"], shape: raw.shape, data };
}

/** Read a golden case file. */
export function readCase(file: string): GoldenCase {
  const obj = unpack(readFileSync(file)) as { meta?: Record<string, unknown>; tensors?: Record<string, never> };
  if (!obj || typeof obj !== "object" || !obj.meta || !obj.tensors) {
    throw new Error(`${file}: not a conformance case (expected {meta, tensors})`);
  }
  const tensors: Record<string, GoldenTensor> = {};
  for (const [name, raw] of Object.entries(obj.tensors)) tensors[name] = toTyped(name, file, raw);
  return { file, meta: obj.meta, tensors };
}
