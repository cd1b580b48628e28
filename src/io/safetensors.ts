// One .safetensors file, read lazily with positioned reads.
//
// Format (https://github.com/huggingface/safetensors, README "Format"):
//   [8 bytes: N, u64 little-endian] [N bytes: JSON header] [data area]
//   header = { "__metadata__"?: {string: string},
//              NAME: { "dtype": "F16"|..., "shape": [..], "data_offsets": [begin, end] }, ... }
//   Offsets are relative to the start of the data area; tensors are little-endian, row-major,
//   and must cover the data area exactly (no overlaps, no holes).
//
// Opening parses and validates the header only. `readBytes`/`read` then fetch one tensor with
// a positioned read (fs.readSync on disk, a copy for in-memory files: source.ts) into a fresh, aligned buffer: a 10 GB file is never slurped and a
// tensor exists once in memory. Every error names the file, the tensor and what is wrong.
//
// API
//   type DType = "F16" | "BF16" | "F32" | "F64" | "I8" | "U8" | "I32" | "I64"
//   interface TensorInfo { name, dtype, shape, file, offset (absolute in file), byteLength }
//   type TensorData = Float32Array | Float64Array | Uint16Array | Int8Array | Uint8Array | Int32Array | BigInt64Array
//   interface RawTensor { info: TensorInfo; data: TensorData }   (F16/BF16 data = raw Uint16Array bits)
//   class SafetensorsFile
//     static open(path: string): SafetensorsFile
//     static fromFile(file: RandomAccessFile, path: string): SafetensorsFile   (takes ownership of file)
//     readonly path, fileSize, headerLength, dataStart, metadata: Record<string,string> | null
//     names(): string[]; has(name): boolean; info(name): TensorInfo
//     readBytes(name, onBytes?: (n: number) => void, dest?: Uint8Array): Uint8Array
//     read(name, onBytes?, dest?): RawTensor      dest: caller-owned memory to read into
//     close(): void
//   DTYPE_BYTES: Record<DType, number>
//   encodeHeader(entries: {name, dtype, shape}[], metadata?): { header: Uint8Array; offsets: [number, number][]; dataBytes: number }
import { openFile } from "./directory.js";
import type { RandomAccessFile } from "./source.js";

export type DType = "F16" | "BF16" | "F32" | "F64" | "I8" | "U8" | "I32" | "I64";

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  F16: 2,
  BF16: 2,
  F32: 4,
  F64: 8,
  I8: 1,
  U8: 1,
  I32: 4,
  I64: 8,
};

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** File the tensor lives in. */
  readonly file: string;
  /** Absolute byte position of the first element in `file`. */
  readonly offset: number;
  readonly byteLength: number;
}

export type TensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | Int32Array
  | BigInt64Array;

export interface RawTensor {
  readonly info: TensorInfo;
  /** Typed view of the tensor's bytes. F16 and BF16 come as raw Uint16Array bit patterns. */
  readonly data: TensorData;
}

// The reference implementation refuses headers above 100 MB (safetensors/src/tensor.rs,
// MAX_HEADER_SIZE); a larger length is a corrupt file, not a big model.
const MAX_HEADER_BYTES = 100_000_000;
// Reads go in slices so progress callbacks fire during a 1 GB tensor and no single
// readSync call exceeds the 2 GiB limit of the underlying read(2) wrapper.
const READ_SLICE_BYTES = 64 << 20;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("safetensors: tensors are little-endian; this reader needs a little-endian machine");
}

function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads exactly `length` bytes at `position` or throws naming what was being read. */
function readExactly(file: RandomAccessFile, buf: Uint8Array, position: number, what: string, onBytes?: (n: number) => void): void {
  let done = 0;
  while (done < buf.length) {
    const want = Math.min(READ_SLICE_BYTES, buf.length - done);
    const n = file.read(buf, done, want, position + done);
    if (n === 0) {
      throw new Error(`${what}: unexpected end of file after ${done} of ${buf.length} bytes (file changed while open?)`);
    }
    done += n;
    if (onBytes) onBytes(n);
  }
}

export class SafetensorsFile {
  readonly metadata: Readonly<Record<string, string>> | null;
  private readonly tensors: Map<string, TensorInfo>;
  private file: RandomAccessFile | null;

  private constructor(
    readonly path: string,
    file: RandomAccessFile,
    readonly fileSize: number,
    readonly headerLength: number,
    metadata: Record<string, string> | null,
    tensors: Map<string, TensorInfo>,
  ) {
    this.file = file;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  /** Byte position where the data area starts. */
  get dataStart(): number {
    return 8 + this.headerLength;
  }

  static open(path: string): SafetensorsFile {
    return SafetensorsFile.fromFile(openFile(path), path);
  }

  /** Parses the header of an opened file named `path` in messages; closes the file if that fails. */
  static fromFile(file: RandomAccessFile, path: string): SafetensorsFile {
    try {
      const { headerLength, metadata, tensors } = parseHeader(file, path, file.size);
      return new SafetensorsFile(path, file, file.size, headerLength, metadata, tensors);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.path}: missing tensor "${name}"`);
    return t;
  }

  /**
   * The tensor's bytes, in `dest` when given (exactly byteLength long: a view into memory the
   * caller owns, e.g. a WebAssembly heap, so the data is written once where it will live), else
   * in a new ArrayBuffer of their own (so any typed view is aligned).
   */
  readBytes(name: string, onBytes?: (n: number) => void, dest?: Uint8Array): Uint8Array {
    const t = this.info(name);
    if (this.file === null) throw new Error(`${this.path}: read of "${name}" after close()`);
    if (dest && dest.byteLength !== t.byteLength) {
      throw new Error(`${this.path}: tensor "${name}" has ${t.byteLength} bytes, destination holds ${dest.byteLength}`);
    }
    const buf = dest ?? new Uint8Array(t.byteLength);
    readExactly(this.file, buf, t.offset, `${this.path}: tensor "${name}"`, onBytes);
    return buf;
  }

  /** The tensor as a typed array (see readBytes for `dest`, which must be aligned to the element size). */
  read(name: string, onBytes?: (n: number) => void, dest?: Uint8Array): RawTensor {
    const info = this.info(name);
    const esize = DTYPE_BYTES[info.dtype];
    if (dest && dest.byteOffset % esize !== 0) {
      throw new Error(`${this.path}: tensor "${name}": destination offset ${dest.byteOffset} is not aligned to ${esize} bytes`);
    }
    const bytes = this.readBytes(name, onBytes, dest);
    const [b, o, n] = [bytes.buffer, bytes.byteOffset, bytes.byteLength / esize];
    let data: TensorData;
    switch (info.dtype) {
      case "F16":
      case "BF16":
        data = new Uint16Array(b, o, n);
        break;
      case "F32":
        data = new Float32Array(b, o, n);
        break;
      case "F64":
        data = new Float64Array(b, o, n);
        break;
      case "I8":
        data = new Int8Array(b, o, n);
        break;
      case "U8":
        data = new Uint8Array(b, o, n);
        break;
      case "I32":
        data = new Int32Array(b, o, n);
        break;
      case "I64":
        data = new BigInt64Array(b, o, n);
        break;
    }
    return { info, data };
  }

  close(): void {
    this.file?.close();
    this.file = null;
  }
}

function parseHeader(
  file: RandomAccessFile,
  path: string,
  fileSize: number,
): { headerLength: number; metadata: Record<string, string> | null; tensors: Map<string, TensorInfo> } {
  if (fileSize < 8) {
    throw new Error(`${path}: truncated file: ${fileSize} bytes, shorter than the 8-byte header length`);
  }
  const lenBytes = new Uint8Array(8);
  readExactly(file, lenBytes, 0, `${path}: header length`);
  const len64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (len64 > BigInt(fileSize - 8)) {
    throw new Error(`${path}: header length ${len64} runs past the end of the file (${fileSize} bytes)`);
  }
  const headerLength = Number(len64);
  if (headerLength > MAX_HEADER_BYTES) {
    throw new Error(`${path}: header length ${headerLength} exceeds the format's limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const headerBytes = new Uint8Array(headerLength);
  readExactly(file, headerBytes, 8, `${path}: header`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new Error(`${path}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new Error(`${path}: header must be a JSON object, got ${Array.isArray(header) ? "an array" : typeof header}`);
  }

  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> | null = null;
  const tensors = new Map<string, TensorInfo>();
  const spans: { name: string; begin: number; end: number }[] = [];

  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof v !== "object" || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== "string")) {
        throw new Error(`${path}: "__metadata__" must map strings to strings`);
      }
      metadata = v as Record<string, string>;
      continue;
    }
    const where = `${path}: tensor "${name}"`;
    if (typeof v !== "object" || v === null) throw new Error(`${where}: entry must be an object`);
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDType(e.dtype)) {
      throw new Error(`${where}: unknown dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(", ")})`);
    }
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
    }
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offs[0] > offs[1]
    ) {
      throw new Error(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offs)}`);
    }
    const shape = e.shape as number[];
    const [begin, end] = offs as [number, number];
    const expected = numel(shape) * DTYPE_BYTES[e.dtype];
    // A shape whose byte size is not even a safe integer cannot describe data in any file.
    if (!Number.isSafeInteger(expected)) {
      throw new Error(`${where}: dtype ${e.dtype} × shape [${shape.join(", ")}] is too large (${expected} bytes)`);
    }
    if (end - begin !== expected) {
      throw new Error(
        `${where}: data size ${end - begin} bytes does not match dtype ${e.dtype} × shape [${shape.join(", ")}] = ${expected} bytes`,
      );
    }
    tensors.set(name, { name, dtype: e.dtype, shape, file: path, offset: dataStart + begin, byteLength: expected });
    spans.push({ name, begin, end });
  }

  // Range: a consistent layout that merely ends past EOF is a truncated file; anything else
  // pointing past the data area is a bad offset.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const covered = spans.reduce((s, t) => s + (t.end - t.begin), 0);
  const maxEnd = spans.reduce((m, t) => Math.max(m, t.end), 0);
  if (maxEnd > dataSize) {
    if (covered === maxEnd) {
      const cut = spans.find((t) => t.end > dataSize)!;
      throw new Error(
        `${path}: truncated file: ${fileSize} bytes, but the header describes ${dataStart + maxEnd} ` +
          `(tensor "${cut.name}" is cut off)`,
      );
    }
    const bad = spans.find((t) => t.end > dataSize)!;
    throw new Error(
      `${path}: tensor "${bad.name}": data_offsets [${bad.begin}, ${bad.end}] out of range: the data area has ${dataSize} bytes`,
    );
  }
  // Overlaps first: a tensor moved onto another leaves a hole behind it too, and the overlap is
  // what names the moved tensor.
  let prev: { name: string; end: number } = { name: "", end: 0 };
  for (const t of spans) {
    if (t.begin < prev.end && t.end > t.begin) {
      throw new Error(
        `${path}: tensor "${t.name}": data_offsets [${t.begin}, ${t.end}] overlap tensor "${prev.name}" (ends at ${prev.end})`,
      );
    }
    if (t.end > prev.end) prev = t;
  }
  prev = { name: "", end: 0 };
  for (const t of spans) {
    if (t.begin < prev.end) {
      throw new Error(
        `${path}: tensor "${t.name}": data_offsets [${t.begin}, ${t.end}] overlap tensor "${prev.name}" (ends at ${prev.end})`,
      );
    }
    if (t.begin > prev.end) {
      throw new Error(
        `${path}: tensor "${t.name}": data starts at ${t.begin} but the previous tensor ends at ${prev.end}: ` +
          `the format allows no holes in the data area` + (prev.name ? ` (previous tensor: "${prev.name}")` : ""),
      );
    }
    prev = t;
  }
  if (prev.end !== dataSize) {
    throw new Error(`${path}: ${dataSize - prev.end} bytes after the last tensor are not described by the header`);
  }
  return { headerLength, metadata, tensors };
}

/**
 * Header bytes (length prefix included) for tensors laid out back to back in the given order.
 * The JSON is padded with spaces to a multiple of 8 bytes, as the reference writer does, so the
 * data area starts aligned.
 */
export function encodeHeader(
  entries: readonly { name: string; dtype: DType; shape: readonly number[] }[],
  metadata?: Record<string, string>,
): { header: Uint8Array; offsets: [number, number][]; dataBytes: number } {
  const obj: Record<string, unknown> = {};
  if (metadata) obj.__metadata__ = metadata;
  const offsets: [number, number][] = [];
  let pos = 0;
  for (const e of entries) {
    if (!isDType(e.dtype)) throw new Error(`encodeHeader: tensor "${e.name}": unknown dtype ${e.dtype}`);
    const n = numel(e.shape) * DTYPE_BYTES[e.dtype];
    offsets.push([pos, pos + n]);
    obj[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [pos, pos + n] };
    pos += n;
  }
  let json = JSON.stringify(obj);
  const raw = new TextEncoder().encode(json);
  const padded = Math.ceil(raw.length / 8) * 8;
  json += " ".repeat(padded - raw.length);
  const header = new Uint8Array(8 + padded);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(new TextEncoder().encode(json), 8);
  return { header, offsets, dataBytes: pos };
}
