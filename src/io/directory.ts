// A checkpoint directory on disk as a CheckpointSource (source.ts), read with positioned fs reads.
import * as fs from "node:fs";
import * as path from "node:path";
import type { CheckpointSource, RandomAccessFile } from "./source.js";

/** Opens one file for positioned reads; throws fs's error (ENOENT, EISDIR...) or "not a regular file". */
export function openFile(file: string): RandomAccessFile {
  const fd = fs.openSync(file, "r");
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new Error(`${file}: not a regular file`);
    let open = true;
    return {
      size: stat.size,
      read: (buf, offset, length, position) => fs.readSync(fd, buf, offset, length, position),
      close: () => {
        if (open) fs.closeSync(fd);
        open = false;
      },
    };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

export class DirectorySource implements CheckpointSource {
  constructor(readonly label: string) {}

  path(name: string): string {
    return path.join(this.label, name);
  }

  kind(name: string): "file" | "other" | null {
    const p = this.path(name);
    if (!fs.existsSync(p)) return null;
    return fs.statSync(p).isFile() ? "file" : "other";
  }

  list(): string[] {
    return fs.readdirSync(this.label);
  }

  open(name: string): RandomAccessFile {
    return openFile(this.path(name));
  }

  readText(name: string): string {
    return fs.readFileSync(this.path(name), "utf8");
  }
}
