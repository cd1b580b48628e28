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
//     readonly dir: string
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

export type ProgressFn = (bytesDone: number, bytesTotal: number) => void;

export const INDEX_FILE = "model.safetensors.index.json";
export const SINGLE_FILE = "model.safetensors";

export class Checkpoint {
  bytesRead = 0;
  onProgress: ProgressFn | null;
  readonly totalBytes: number;

  private constructor(
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
      return Checkpoint.single(path.dirname(dirOrFile), dirOrFile, onProgress);
    }
    const dir = dirOrFile;
    const index = path.join(dir, INDEX_FILE);
    if (fs.existsSync(index)) return Checkpoint.sharded(dir, index, onProgress);
    const single = path.join(dir, SINGLE_FILE);
    if (fs.existsSync(single)) return Checkpoint.single(dir, single, onProgress);
    const bins = fs.readdirSync(dir).filter((f) => f.endsWith(".bin"));
    const hint = bins.length > 0 ? ` (found ${bins.join(", ")}: PyTorch pickles are not read; convert them to safetensors)` : "";
    throw new Error(`checkpoint ${dir}: neither ${INDEX_FILE} nor ${SINGLE_FILE} found${hint}`);
  }

  private static single(dir: string, file: string, onProgress: ProgressFn | null): Checkpoint {
    const f = SafetensorsFile.open(file);
    const where = new Map<string, SafetensorsFile>();
    for (const n of f.names()) where.set(n, f);
    return new Checkpoint(dir, "single", [f], where, null, onProgress);
  }

  private static sharded(dir: string, indexPath: string, onProgress: ProgressFn | null): Checkpoint {
    let index: unknown;
    try {
      index = JSON.parse(fs.readFileSync(indexPath, "utf8"));
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
      const shardPath = path.join(dir, shard);
      if (!fs.existsSync(shardPath)) {
        throw new Error(`${indexPath}: tensor "${name}" is in shard "${shard}", which is missing from ${dir}`);
      }
      if (!fs.statSync(shardPath).isFile()) {
        throw new Error(`${indexPath}: tensor "${name}" is in shard "${shard}", which is not a regular file`);
      }
    }
    const files: SafetensorsFile[] = [];
    const byShard = new Map<string, SafetensorsFile>();
    try {
      for (const s of (shardNames as string[]).sort()) {
        let f: SafetensorsFile;
        try {
          f = SafetensorsFile.open(path.join(dir, s));
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
      return new Checkpoint(dir, "sharded", files, where, indexTotalSize, onProgress);
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
