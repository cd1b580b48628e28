// A checkpoint directory as Hugging Face publishes it: either one `model.safetensors`, or shards
// `model-0000k-of-0000n.safetensors` listed by `model.safetensors.index.json`
// ({ metadata: { total_size }, weight_map: { tensor name: shard file } }).
//
// Opening reads the index and every shard header (a few MB for the full model) and checks that
// the index and the headers agree; tensor data is read later, one tensor at a time.
//
// API
//   type ProgressFn = (bytesDone: number, bytesTotal: number) => void
//   class Checkpoint
//     static open(dirOrFile: string, options?: { onProgress?: ProgressFn }): Checkpoint
//     static fromSource(source: CheckpointSource, options?): Checkpoint   same layouts and checks, any source (source.ts)
//     readonly dir: string               the directory, or the source's label (e.g. a base URL)
//     readonly layout: "single" | "sharded"
//     readonly files: readonly SafetensorsFile[]
//     readonly totalBytes: number        sum of all tensor sizes (what reading everything costs)
//     readonly indexTotalSize: number | null   metadata.total_size from the index, if any
//     bytesRead: number                  data bytes read so far (drives onProgress)
//     onProgress: ProgressFn | null
//     names(): string[]; has(name): boolean
//     info(name): TensorInfo             throws "missing tensor" naming the checkpoint
//     read(name, dest?: Uint8Array): RawTensor   positioned read (into dest if given), reports progress
//     close(): void
import * as fs from "node:fs";
import * as path from "node:path";
import { SafetensorsFile, type RawTensor, type TensorInfo } from "./safetensors.js";
import { DirectorySource } from "./directory.js";
import type { CheckpointSource } from "./source.js";

export type ProgressFn = (bytesDone: number, bytesTotal: number) => void;

export const INDEX_FILE = "model.safetensors.index.json";
export const SINGLE_FILE = "model.safetensors";

export class Checkpoint {
  bytesRead = 0;
  onProgress: ProgressFn | null;
  readonly totalBytes: number;

  private constructor(
    /** Where the files are: names in messages come from source.path(). */
    readonly source: CheckpointSource,
    readonly dir: string,
    readonly layout: "single" | "sharded",
    readonly files: readonly SafetensorsFile[],
    private readonly where: Map<string, SafetensorsFile>,
    readonly indexTotalSize: number | null,
    onProgress: ProgressFn | null,
  ) {
    this.onProgress = onProgress;
    let total = 0;
    for (const [name, f] of where) total += f.info(name).byteLength;
    this.totalBytes = total;
  }

  /**
   * Opens `dirOrFile`: a directory holding model.safetensors.index.json (sharded) or
   * model.safetensors (single file), or a path to one .safetensors file.
   */
  static open(dirOrFile: string, options: { onProgress?: ProgressFn } = {}): Checkpoint {
    const onProgress = options.onProgress ?? null;
    if (!fs.existsSync(dirOrFile)) throw new Error(`checkpoint ${dirOrFile}: no such file or directory`);
    if (fs.statSync(dirOrFile).isFile()) {
      return Checkpoint.single(new DirectorySource(path.dirname(dirOrFile)), SafetensorsFile.open(dirOrFile), onProgress);
    }
    return Checkpoint.fromSource(new DirectorySource(dirOrFile), options);
  }

  /**
   * Opens the checkpoint files of `source`: model.safetensors.index.json and its shards
   * (sharded), or model.safetensors (single file).
   */
  static fromSource(source: CheckpointSource, options: { onProgress?: ProgressFn } = {}): Checkpoint {
    const onProgress = options.onProgress ?? null;
    const dir = source.label;
    if (source.kind(INDEX_FILE) !== null) return Checkpoint.sharded(source, onProgress);
    if (source.kind(SINGLE_FILE) !== null) {
      return Checkpoint.single(source, SafetensorsFile.fromFile(source.open(SINGLE_FILE), source.path(SINGLE_FILE)), onProgress);
    }
    const bins = source.list().filter((f) => f.endsWith(".bin"));
    const hint = bins.length > 0 ? ` (found ${bins.join(", ")}: PyTorch pickles are not read; convert them to safetensors)` : "";
    throw new Error(`checkpoint ${dir}: neither ${INDEX_FILE} nor ${SINGLE_FILE} found${hint}`);
  }

  private static single(source: CheckpointSource, f: SafetensorsFile, onProgress: ProgressFn | null): Checkpoint {
    const where = new Map<string, SafetensorsFile>();
    for (const n of f.names()) where.set(n, f);
    return new Checkpoint(source, source.label, "single", [f], where, null, onProgress);
  }

  private static sharded(source: CheckpointSource, onProgress: ProgressFn | null): Checkpoint {
    const dir = source.label;
    const indexPath = source.path(INDEX_FILE);
    let index: unknown;
    try {
      index = JSON.parse(source.readText(INDEX_FILE));
    } catch (e) {
      throw new Error(`${indexPath}: not valid JSON (${(e as Error).message})`);
    }
    const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
    if (!isObject(index) || !isObject(index.weight_map)) {
      throw new Error(`${indexPath}: missing object field "weight_map"`);
    }
    if (index.metadata !== undefined && !isObject(index.metadata)) {
      throw new Error(`${indexPath}: "metadata" must be an object, got ${JSON.stringify(index.metadata)}`);
    }
    const weightMap = index.weight_map;
    const totalSize = index.metadata?.total_size;
    const indexTotalSize = Number.isSafeInteger(totalSize) && (totalSize as number) >= 0 ? (totalSize as number) : null;

    // Open each shard once, in name order, checking it exists before reading any.
    const shardNames = [...new Set(Object.values(weightMap))];
    for (const [name, shard] of Object.entries(weightMap)) {
      if (typeof shard !== "string" || shard === "" || shard === "." || shard === ".." || /[/\\\0]/.test(shard)) {
        throw new Error(`${indexPath}: tensor "${name}" maps to ${JSON.stringify(shard)}, expected a file name in ${dir}`);
      }
      const kind = source.kind(shard);
      if (kind === null) {
        throw new Error(`${indexPath}: tensor "${name}" is in shard "${shard}", which is missing from ${dir}`);
      }
      if (kind !== "file") {
        throw new Error(`${indexPath}: tensor "${name}" is in shard "${shard}", which is not a regular file`);
      }
    }
    const files: SafetensorsFile[] = [];
    const byShard = new Map<string, SafetensorsFile>();
    try {
      for (const s of (shardNames as string[]).sort()) {
        let f: SafetensorsFile;
        try {
          f = SafetensorsFile.fromFile(source.open(s), source.path(s));
        } catch (e) {
          const listed = Object.keys(weightMap).filter((n) => weightMap[n] === s);
          const more = listed.length > 1 ? ` and ${listed.length - 1} more` : "";
          throw new Error(`${(e as Error).message} (shard listed in ${indexPath} for tensor "${listed[0]}"${more})`);
        }
        files.push(f);
        byShard.set(s, f);
      }
      const where = new Map<string, SafetensorsFile>();
      for (const [name, shard] of Object.entries(weightMap)) {
        const f = byShard.get(shard as string)!;
        if (!f.has(name)) throw new Error(`${indexPath}: tensor "${name}" is listed in shard "${shard}", but ${f.path} has no such tensor`);
        where.set(name, f);
      }
      // A tensor present in a shard but absent from the index would be silently unreachable.
      for (const f of files) {
        for (const n of f.names()) {
          if (where.get(n) !== f) {
            throw new Error(`${f.path}: tensor "${n}" is not listed for this shard in ${indexPath}`);
          }
        }
      }
      return new Checkpoint(source, dir, "sharded", files, where, indexTotalSize, onProgress);
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  info(name: string): TensorInfo {
    const f = this.where.get(name);
    if (!f) throw new Error(`checkpoint ${this.dir}: missing tensor "${name}"`);
    return f.info(name);
  }

  /** Reads one tensor, into `dest` when given (see SafetensorsFile.readBytes). */
  read(name: string, dest?: Uint8Array): RawTensor {
    const f = this.where.get(name);
    if (!f) throw new Error(`checkpoint ${this.dir}: missing tensor "${name}"`);
    const progress = (n: number) => {
      this.bytesRead += n;
      if (this.onProgress) this.onProgress(this.bytesRead, this.totalBytes);
    };
    return f.read(name, progress, dest);
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}
