// What the browser bundle gets for `node:fs`, `node:path`, `node:url` and `node:os`
// (tools/build-browser.ts). Some shared modules keep Node-only entry points next to
// platform-neutral ones (Checkpoint.open(dir) beside Checkpoint.fromSource, QwenTokenizer.load()
// beside fromVocabBytes, chat's image files beside its `images` bytes); in a browser those entry
// points fail with this error naming the call, never silently. Nothing here runs at import time.
function nodeOnly(name: string): never {
  throw new Error(`${name} is Node-only and unavailable in a browser: load from bytes instead (QwenVL.loadFrom, fetchCheckpoint, MemorySource, QwenTokenizer.fromVocabBytes, chat's images option)`);
}
const stub = (name: string) => (..._args: unknown[]): never => nodeOnly(name);

// node:fs
export const existsSync = stub("fs.existsSync");
export const statSync = stub("fs.statSync");
export const readFileSync = stub("fs.readFileSync");
export const readdirSync = stub("fs.readdirSync");
export const openSync = stub("fs.openSync");
export const fstatSync = stub("fs.fstatSync");
export const readSync = stub("fs.readSync");
export const closeSync = stub("fs.closeSync");
export const writeFileSync = stub("fs.writeFileSync");
export const mkdirSync = stub("fs.mkdirSync");
// node:path
export const join = stub("path.join");
export const dirname = stub("path.dirname");
export const basename = stub("path.basename");
export const resolve = stub("path.resolve");
export const relative = stub("path.relative");
export const isAbsolute = stub("path.isAbsolute");
export const sep = "/";
// node:url
export const fileURLToPath = stub("url.fileURLToPath");
export const pathToFileURL = stub("url.pathToFileURL");
// node:os
export const availableParallelism = stub("os.availableParallelism");
export const tmpdir = stub("os.tmpdir");
