// A checkpoint whose bytes two independent writers reproduce exactly: this one (TypeScript) and
// tools/pcg_checkpoint.py (numpy), so that PyTorch goldens made from the Python file on another
// machine belong to the file written here. Layout, shapes, value ranges and shard split are
// tools/make-checkpoint.ts's (tensorList, planShards, the presets' index); only the random source
// differs: each tensor draws from its own numpy-compatible PCG64 stream (tools/pcg64.ts) and every
// value is derived from the raw 64-bit outputs by integer operations or exactly rounded formulas:
//
//   F16 (float fill {mean, halfWidth}): each u64 gives four 16-bit indices k (bits 0-15 first);
//       value = f16RNE(mean + halfWidth · ((2k + 1)/65536 − 1)), each operation an IEEE double op,
//       rounded once to binary16, ties to even — the same 65,536 levels as make-checkpoint.ts.
//   I32 qweight: each u64 gives two words, low 32 bits first; a nibble drawn as 0 becomes 8, so the
//       levels q − 8 are symmetric (−7..7, mean 0) like a real symmetric GPTQ checkpoint's. (Uniform
//       0..15 has mean −0.5: every output then shares a shift ∝ Σx, the residual stream develops a
//       common mode that RMSNorm turns into Σx ∝ hidden size, and 32 layers amplify it into a
//       hidden state of rms ~2500 whose greedy decode repeats one token — measured with plain
//       uniform nibbles.)
//   I32 constant (qzeros) and g_idx (i / group size): no draws.
//
//   npx node dist/tools/pcg-checkpoint.js --config tiny|full|config.json --out DIR [--seed N]
//       [--plan FILE]    also write the plan (what Python needs to write the same bytes) as JSON
//
// Prints the SHA-256 of every shard. Int4 (GPTQ) layout only: the goldens are for that checkpoint.
//
// API
//   f16RNE(x: number): number                 exactly rounded double → binary16 bits
//   f16Levels(mean, halfWidth): Uint16Array   the 65,536 table entries of a float fill
//   checkpointPlan(configJson, shardMap?): CheckpointPlan
//   writePcgCheckpoint(plan, out, seed, onTensor?): Promise<{ file: string; sha256: string; bytes: number }[]>
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { parseModelConfig } from "../src/config.js";
import { DTYPE_BYTES, encodeHeader } from "../src/io/safetensors.js";
import { DEFAULT_SHARD_SIZE, PRESETS, configsDir, planShards, tensorList, type TensorPlan as BasePlan } from "./make-checkpoint.js";
import { streamFor } from "./pcg64.js";

/** binary16 limits: 2^−14 is the smallest normal, 65520 the first value that rounds to infinity. */
const F16_MIN_NORMAL = 2 ** -14;
const F16_OVERFLOW = 65520;

/** Round-half-even of a non-negative double to an integer (exact: floor and the difference are exact). */
function rne(y: number): number {
  const f = Math.floor(y);
  const d = y - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f + (f % 2);
}

/** Double → binary16 bits, rounded once to nearest, ties to even (no detour through f32). */
export function f16RNE(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= F16_OVERFLOW) return sign | 0x7c00;
  if (a < F16_MIN_NORMAL) return sign | rne(a * 2 ** 24); // subnormal grid 2^−24 (1024 = min normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--; // log2 may be off by one near powers of two
  if (2 ** (e + 1) <= a) e++;
  let q = rne(a * 2 ** (10 - e)); // in [1024, 2048]
  if (q === 2048) {
    e++;
    q = 1024;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | (q - 1024);
}

const levelCache = new Map<string, Uint16Array>();

/** Table of a float fill: entry k is the binary16 of mean + halfWidth · ((2k + 1)/65536 − 1). */
export function f16Levels(mean: number, halfWidth: number): Uint16Array {
  const key = `${mean}/${halfWidth}`;
  let t = levelCache.get(key);
  if (!t) {
    t = new Uint16Array(65536);
    for (let k = 0; k < 65536; k++) t[k] = f16RNE(mean + halfWidth * ((2 * k + 1) / 65536 - 1));
    levelCache.set(key, t);
  }
  return t;
}

/** make-checkpoint's tensor plan, with qweight's fill replaced by the centred nibbles above. */
export type TensorPlan = Omit<BasePlan, "fill"> & { readonly fill: BasePlan["fill"] | { readonly kind: "q4-centred" } };

/** Per nibble of each word: 0 → 8 (bit 0 of `t` marks a non-zero nibble). */
export function centreNibbles(w: Uint32Array): void {
  for (let i = 0; i < w.length; i++) {
    const x = w[i];
    const t = (x | (x >>> 1) | (x >>> 2) | (x >>> 3)) & 0x11111111;
    w[i] = x | ((~t & 0x11111111) << 3);
  }
}

export interface ShardPlan {
  readonly file: string;
  readonly tensors: readonly TensorPlan[];
}

/** Everything a writer needs: shards in order, and the small JSON files as exact text. */
export interface CheckpointPlan {
  readonly shards: readonly ShardPlan[];
  /** file name → content (config.json, generation_config.json, quantize_config.json, index). */
  readonly textFiles: Readonly<Record<string, string>>;
  /** Safetensors header metadata of every shard (transformers writes {"format": "pt"}). */
  readonly metadata: Readonly<Record<string, string>>;
}

export function checkpointPlan(
  configJson: Record<string, unknown>,
  generationJson: Record<string, unknown>,
  shardMap?: Readonly<Record<string, string>>,
): CheckpointPlan {
  const config = parseModelConfig(configJson, "config");
  const centred = (t: BasePlan): TensorPlan =>
    t.name.endsWith(".qweight") && t.fill.kind === "random-u32" ? { ...t, fill: { kind: "q4-centred" } } : t;
  const split = planShards(tensorList(config, "int4"), DEFAULT_SHARD_SIZE, shardMap);
  const names = split.names;
  const shards = split.shards.map((s) => s.map(centred));
  const metadata = { format: "pt" };
  const textFiles: Record<string, string> = {
    "config.json": JSON.stringify(configJson, null, 2) + "\n",
    "generation_config.json": JSON.stringify(generationJson, null, 2) + "\n",
  };
  const qc = configJson.quantization_config as Record<string, unknown> | undefined;
  if (qc) {
    // quantize_config.json is quantization_config without transformers' quant_method key.
    const { quant_method: _, ...rest } = qc;
    textFiles["quantize_config.json"] = JSON.stringify(rest, null, 2) + "\n";
  }
  if (shards.length > 1) {
    const weightMap: Record<string, string> = {};
    let total = 0;
    shards.forEach((s, i) => {
      for (const t of s) weightMap[t.name] = names[i];
      total += encodeHeader(s, metadata).dataBytes;
    });
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
    textFiles["model.safetensors.index.json"] = JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + "\n";
  }
  return { shards: shards.map((tensors, i) => ({ file: names[i], tensors })), textFiles, metadata };
}

/** Elements per slice: a multiple of 4 so every slice but the last uses whole u64 draws. */
const SLICE_ELEMS = 1 << 22;

/** The bytes of one tensor, slice by slice (each slice valid only until the next call). */
export function* tensorSlices(t: TensorPlan, seed: number): Generator<Uint8Array> {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const esize = DTYPE_BYTES[t.dtype];
  const f = t.fill;
  const rng = f.kind === "float" || f.kind === "random-u32" || f.kind === "q4-centred" ? streamFor(seed, t.name) : null;
  // u32 words: I32 slices use count words (two per draw), F16 slices count / 2.
  const raw = new Uint32Array(SLICE_ELEMS + 4);
  const buf = new ArrayBuffer(SLICE_ELEMS * esize);
  for (let start = 0; start < n; start += SLICE_ELEMS) {
    const count = Math.min(SLICE_ELEMS, n - start);
    if (f.kind === "float") {
      if (t.dtype !== "F16") throw new Error(`tensor ${t.name}: float fill in ${t.dtype}; this writer makes F16 only`);
      const table = f16Levels(f.init.mean, f.init.halfWidth);
      rng!.fillU32(raw, Math.ceil(count / 4));
      const idx = new Uint16Array(raw.buffer, 0, count); // little-endian: bits 0-15 of a u64 first
      const out = new Uint16Array(buf, 0, count);
      for (let i = 0; i < count; i++) out[i] = table[idx[i]];
    } else if (t.dtype !== "I32") {
      throw new Error(`tensor ${t.name}: ${f.kind} fill in ${t.dtype}; expected I32`);
    } else if (f.kind === "random-u32" || f.kind === "q4-centred") {
      rng!.fillU32(raw, Math.ceil(count / 2));
      const o = new Uint32Array(buf, 0, count);
      o.set(raw.subarray(0, count));
      if (f.kind === "q4-centred") centreNibbles(o);
    } else if (f.kind === "const-u32") {
      new Uint32Array(buf, 0, count).fill(f.value >>> 0);
    } else {
      const o = new Int32Array(buf, 0, count);
      for (let i = 0; i < count; i++) o[i] = Math.floor((start + i) / f.groupSize);
    }
    yield new Uint8Array(buf, 0, count * esize);
  }
}

/** Writes every shard and text file of `plan` into `out`; returns each shard's SHA-256. */
export function writePcgCheckpoint(
  plan: CheckpointPlan,
  out: string,
  seed: number,
  onTensor?: (name: string) => void,
): { file: string; sha256: string; bytes: number }[] {
  fs.mkdirSync(out, { recursive: true });
  const result = [];
  for (const s of plan.shards) {
    const { header } = encodeHeader(s.tensors, { ...plan.metadata });
    const hash = createHash("sha256");
    const fd = fs.openSync(path.join(out, s.file), "w");
    let bytes = 0;
    const put = (b: Uint8Array) => {
      hash.update(b);
      let done = 0;
      while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done);
      bytes += b.length;
    };
    try {
      put(header);
      for (const t of s.tensors) {
        onTensor?.(t.name);
        for (const slice of tensorSlices(t, seed)) put(slice);
      }
    } finally {
      fs.closeSync(fd);
    }
    result.push({ file: s.file, sha256: hash.digest("hex"), bytes });
  }
  for (const [name, text] of Object.entries(plan.textFiles)) fs.writeFileSync(path.join(out, name), text);
  return result;
}

/** The plan of a preset name (tiny, full) or a config.json path; presets keep their shard split. */
export function planFor(configArg: string): CheckpointPlan {
  const preset = PRESETS[configArg];
  const cfgFile = preset ? path.join(configsDir(), preset.file) : configArg;
  const configJson = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
  const generationJson = JSON.parse(fs.readFileSync(path.join(configsDir(), "generation_config.json"), "utf8"));
  const shardMap = preset ? (JSON.parse(fs.readFileSync(path.join(configsDir(), preset.index), "utf8")).weight_map as Record<string, string>) : undefined;
  return checkpointPlan(configJson, generationJson, shardMap);
}

function main(argv: string[]): void {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
      throw new Error(`usage: pcg-checkpoint --config tiny|full|config.json --out DIR [--seed N] [--plan FILE] (bad argument ${argv[i]})`);
    }
    args.set(argv[i].slice(2), argv[i + 1]);
  }
  const cfg = args.get("config");
  const out = args.get("out");
  if (!cfg || !out) throw new Error("pcg-checkpoint: --config and --out are required");
  const seed = Number(args.get("seed") ?? "0");
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got ${args.get("seed")}`);
  const plan = planFor(cfg);
  const planFile = args.get("plan");
  if (planFile) fs.writeFileSync(planFile, JSON.stringify(plan));
  const t0 = performance.now();
  let last = 0;
  const shas = writePcgCheckpoint(plan, out, seed, (name) => {
    const now = performance.now();
    if (now - last > 5000) {
      last = now;
      process.stderr.write(`[${((now - t0) / 1000).toFixed(0)} s] ${name}\n`);
    }
  });
  for (const s of shas) console.log(`${s.sha256}  ${s.file}  ${s.bytes}`);
  console.log(`seed ${seed}: ${shas.length} shard(s) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
