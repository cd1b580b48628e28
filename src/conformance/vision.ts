// Vision conformance: one vision-IMAGE.msgpack case (format: the conformance README) against the
// TypeScript image pipeline and vision tower.
//
//   1. The image file `meta.image` is decoded and resized by src/image/preprocess.ts and compared
//      with the golden `pixels_u8`: bit-exact for PNG content, within 1 level for JPEG content
//      (decoders may differ by one level, the README's "Tolerances").
//   2. The tower runs on the GOLDEN `pixels_u8` (normalised as torchvision does), so an image decoding
//      difference cannot hide or excuse a tower error; every traced tensor is compared with
//      checkTensor (relative L2 < 1e-4).
// Towers are cached per checkpoint directory and backend: six cases load the weights once.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Backend, Tensor } from "../ops/backend.js";
import { VarBuilder } from "../io/var-builder.js";
import { VisionTower } from "../model/vision.js";
import { normalizeCLIP, preprocessImage } from "../image/preprocess.js";
import { isPng } from "../image/png.js";
import { checkTensor, formatCheck, readCase, type GoldenTensor, type TensorCheck } from "./compare.js";

export interface VisionCaseOptions {
  readonly checkpointDir: string;
  readonly imagesDir: string;
  readonly backend: Backend;
  readonly log: (line: string) => void;
}

/** Largest per-channel level difference allowed for JPEG input (README "Tolerances"). */
const JPEG_MAX_LEVEL_DIFF = 1;

const towers = new WeakMap<Backend, Map<string, VisionTower>>();

/** The tower for `checkpointDir` on `backend`, loaded once. */
export function cachedVisionTower(checkpointDir: string, backend: Backend): VisionTower {
  const key = resolve(checkpointDir);
  let perBackend = towers.get(backend);
  if (!perBackend) towers.set(backend, (perBackend = new Map()));
  let tower = perBackend.get(key);
  if (!tower) {
    const { vb, config, checkpoint } = VarBuilder.open(key);
    try {
      tower = VisionTower.load(vb, config.visual, backend);
    } finally {
      checkpoint.close(); // the tower holds its own copies of every weight
    }
    perBackend.set(key, tower);
  }
  return tower;
}

function goldenTensor(file: string, tensors: Record<string, GoldenTensor>, name: string, dtype: GoldenTensor["dtype"]): GoldenTensor {
  const t = tensors[name];
  if (!t) throw new Error(`${file}: no tensor ${name}`);
  if (t.dtype !== dtype) throw new Error(`${file}: tensor ${name} is ${t.dtype}, expected ${dtype}`);
  return t;
}

/** Step 1: our decode + resize of the image file against the golden bytes. */
async function checkPixels(
  file: string, imagePath: string, golden: Uint8Array, size: number, log: (line: string) => void,
): Promise<boolean> {
  const name = "pixels_u8".padEnd(28);
  if (!existsSync(imagePath)) {
    log(`  FAIL ${name} image file ${imagePath} not found`);
    return false;
  }
  const bytes = new Uint8Array(readFileSync(imagePath));
  const png = isPng(bytes); // by content: one test image is a JPEG named .png
  const { pixelsU8 } = await preprocessImage(bytes, { imageSize: size, name: imagePath });
  if (pixelsU8.length !== golden.length) {
    log(`  FAIL ${name} ${pixelsU8.length} bytes, golden has ${golden.length} (${file})`);
    return false;
  }
  let maxDiff = 0;
  let differing = 0;
  for (let i = 0; i < golden.length; i++) {
    const d = Math.abs(pixelsU8[i] - golden[i]);
    if (d > 0) differing++;
    if (d > maxDiff) maxDiff = d;
  }
  const limit = png ? 0 : JPEG_MAX_LEVEL_DIFF;
  const ok = maxDiff <= limit;
  log(`  ${ok ? "ok  " : "FAIL"} ${name} max_level_diff=${maxDiff} (limit ${limit}, ${png ? "PNG" : "JPEG"})  differing=${differing}/${golden.length}`);
  return ok;
}

export interface VisionCaseResult {
  readonly ok: boolean;
  /** One entry per compared float tensor, in forward order. */
  readonly checks: readonly TensorCheck[];
}

export async function runVisionCase(caseFile: string, opts: VisionCaseOptions): Promise<VisionCaseResult> {
  const c = readCase(caseFile);
  if (c.meta.kind !== "vision") throw new Error(`${caseFile}: meta.kind is ${JSON.stringify(c.meta.kind)}, expected "vision"`);
  const image = c.meta.image;
  if (typeof image !== "string" || image === "") throw new Error(`${caseFile}: meta.image must be a file name, got ${JSON.stringify(image)}`);

  const tower = cachedVisionTower(opts.checkpointDir, opts.backend);
  const S = tower.config.imageSize;
  const goldenPixels = goldenTensor(caseFile, c.tensors, "pixels_u8", "u8");
  if (goldenPixels.shape.join(",") !== `${S},${S},3`) {
    throw new Error(`${caseFile}: pixels_u8 has shape [${goldenPixels.shape}], the checkpoint's tower needs [${S}, ${S}, 3]`);
  }
  let ok = await checkPixels(caseFile, join(opts.imagesDir, image), goldenPixels.data as Uint8Array, S, opts.log);

  const seen = new Set<string>();
  const checks: TensorCheck[] = [];
  // Reads are captured when issued (the tower may release the tensor right after) and compared
  // once the tower is done, in trace order.
  const pending: Promise<void>[] = [];
  const trace = (name: string, t: Tensor) => {
    const golden = c.tensors[name];
    if (!golden) return; // an intermediate this case does not record
    seen.add(name);
    pending.push(opts.backend.read(t).then((values) => {
      const check = checkTensor(name, values, golden.data);
      checks.push(check);
      ok &&= check.ok;
      opts.log(formatCheck(check));
    }));
  };
  const embeds = tower.encode(normalizeCLIP(goldenPixels.data as Uint8Array, S), trace);
  // Chained in order: the log lists the tensors as the tower produced them.
  for (const p of pending) await p;
  opts.backend.release(embeds);

  // A golden tensor the tower never produced is a failure, not a silent pass.
  for (const name of Object.keys(c.tensors)) {
    if (name === "pixels_u8" || seen.has(name)) continue;
    ok = false;
    opts.log(`  FAIL ${name.padEnd(28)} not produced by the vision tower`);
  }
  return { ok, checks };
}
