// Where checkpoint files come from. The loader (checkpoint.ts, safetensors.ts, config.ts) asks a
// CheckpointSource for files by name and reads them with positioned reads, so the same
// validation runs on a directory (directory.ts, Node) and on bytes held in memory (MemorySource:
// a browser's fetched files, fetch.ts). Reads are synchronous: the model graph pulls its weights
// synchronously while it is built, so bytes that come over the network are fetched before.
//
// API
//   interface RandomAccessFile { size; read(buf, offset, length, position): bytes read; close() }
//   interface CheckpointSource
//     label                       the directory path or base URL, for messages
//     path(name)                  how file `name` is named in messages (dir/name, url/name)
//     kind(name)                  "file" | "other" (e.g. a directory) | null (absent)
//     list()                      file names, for hints
//     open(name): RandomAccessFile;  readText(name): string (UTF-8)
//   class MemorySource implements CheckpointSource   (files: name → ArrayBuffer | Uint8Array)

export interface RandomAccessFile {
  readonly size: number;
  /** Copies up to `length` bytes at `position` into buf[offset..]; returns how many (0 at the end). */
  read(buf: Uint8Array, offset: number, length: number, position: number): number;
  close(): void;
}

export interface CheckpointSource {
  readonly label: string;
  path(name: string): string;
  kind(name: string): "file" | "other" | null;
  list(): string[];
  open(name: string): RandomAccessFile;
  readText(name: string): string;
}

/** Checkpoint files held in memory, by file name (no directories: names never contain "/"). */
export class MemorySource implements CheckpointSource {
  private readonly files: Map<string, Uint8Array>;

  constructor(
    files: ReadonlyMap<string, ArrayBuffer | Uint8Array> | Readonly<Record<string, ArrayBuffer | Uint8Array>>,
    readonly label = "memory",
  ) {
    const entries = files instanceof Map ? [...files.entries()] : Object.entries(files);
    this.files = new Map();
    for (const [name, b] of entries) {
      if (name === "" || /[/\\\0]/.test(name)) throw new Error(`MemorySource: file name ${JSON.stringify(name)} must be a plain file name`);
      const bytes = b instanceof Uint8Array ? b : b instanceof ArrayBuffer ? new Uint8Array(b) : null;
      if (!bytes) throw new Error(`MemorySource: file "${name}" must be an ArrayBuffer or a Uint8Array`);
      this.files.set(name, bytes);
    }
  }

  path(name: string): string {
    return this.label.endsWith("/") ? this.label + name : `${this.label}/${name}`;
  }

  kind(name: string): "file" | null {
    return this.files.has(name) ? "file" : null;
  }

  list(): string[] {
    return [...this.files.keys()];
  }

  private bytes(name: string): Uint8Array {
    const b = this.files.get(name);
    if (!b) throw new Error(`${this.path(name)}: no such file`);
    return b;
  }

  open(name: string): RandomAccessFile {
    const b = this.bytes(name);
    return {
      size: b.byteLength,
      read: (buf, offset, length, position) => {
        const n = Math.max(0, Math.min(length, b.byteLength - position));
        buf.set(b.subarray(position, position + n), offset);
        return n;
      },
      close: () => {},
    };
  }

  readText(name: string): string {
    return new TextDecoder("utf-8").decode(this.bytes(name));
  }
}
