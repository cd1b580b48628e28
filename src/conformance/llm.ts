// Conformance of the decoder against an llm-*.msgpack golden (format: the conformance README,
// "llm-NAME.msgpack"): prefill logits at the listed positions, the last prompt position's hidden
// state after each block (`llm.block.K`), and teacher-forced decode logits with the KV cache.
// Image spans are filled by running the vision tower on the image file the case names.
//
// API
//   runLlmCase(caseFile, { checkpointDir, imagesDir, backend, log }): Promise<{ ok: boolean }>
//   async compareLlmCase(model, golden, imageEmbeds, log): { ok: boolean }   (embeddings supplied)
import * as fs from "node:fs";
import * as path from "node:path";
import { Tensor, type Backend } from "../ops/backend.js";
import { QwenVL } from "../model/qwen-vl.js";
import { argmax } from "../generate/sampling.js";
import { checkTensor, formatCheck, readCase, type GoldenCase, type GoldenTensor } from "./compare.js";

export interface LlmCaseOptions {
  readonly checkpointDir: string;
  readonly imagesDir: string;
  readonly backend: Backend;
  readonly log: (line: string) => void;
}

/** Decode steps whose reference top-1/top-2 margin is at most this need not agree on argmax (README). */
const MARGIN_FOR_ARGMAX = 1e-2;

// Loaded models, per checkpoint directory and backend: every case of a directory shares one.
const models = new WeakMap<Backend, Map<string, Promise<QwenVL>>>();

function loadCached(checkpointDir: string, backend: Backend): Promise<QwenVL> {
  let byDir = models.get(backend);
  if (!byDir) models.set(backend, (byDir = new Map()));
  const key = path.resolve(checkpointDir);
  let p = byDir.get(key);
  if (!p) {
    p = QwenVL.load(key, { backend });
    p.catch(() => byDir!.delete(key)); // a failed load is retried by the next case
    byDir.set(key, p);
  }
  return p;
}

function tensor(golden: GoldenCase, name: string, dtype: GoldenTensor["dtype"]): GoldenTensor {
  const t = golden.tensors[name];
  if (!t) throw new Error(`${golden.file}: missing tensor "${name}"`);
  if (t.dtype !== dtype) throw new Error(`${golden.file}: tensor "${name}" has dtype ${t.dtype}, expected ${dtype}`);
  return t;
}

export async function runLlmCase(caseFile: string, opts: LlmCaseOptions): Promise<{ ok: boolean }> {
  const golden = readCase(caseFile);
  if (golden.meta.kind !== "llm") throw new Error(`${caseFile}: meta.kind is ${JSON.stringify(golden.meta.kind)}, expected "llm"`);
  const model = await loadCached(opts.checkpointDir, opts.backend);

  const ids = tensor(golden, "input_ids", "i32").data;
  const images = (golden.meta.images ?? []) as unknown;
  if (!Array.isArray(images) || images.some((s) => typeof s !== "string")) {
    throw new Error(`${caseFile}: meta.images must be a list of paths`);
  }
  const spans = model.imageSpans(ids);
  if (spans.length !== images.length) {
    throw new Error(`${caseFile}: input_ids hold ${spans.length} image span(s) but meta.images lists ${images.length}`);
  }
  const imageEmbeds: Tensor[] = [];
  for (let i = 0; i < spans.length; i++) {
    if (spans[i].path !== images[i]) {
      throw new Error(`${caseFile}: image span ${i} names "${spans[i].path}" but meta.images[${i}] is "${images[i]}"`);
    }
    const file = path.join(opts.imagesDir, images[i] as string);
    if (!fs.existsSync(file)) throw new Error(`${caseFile}: image ${file} not found (images dir ${opts.imagesDir})`);
    imageEmbeds.push(await model.encodeImage(new Uint8Array(fs.readFileSync(file)), file));
  }
  return compareLlmCase(model, golden, imageEmbeds, opts.log);
}

/** Compares one llm golden with the given image embeddings (one [256, C] per span). */
export async function compareLlmCase(
  model: QwenVL,
  golden: GoldenCase,
  imageEmbeds: readonly Tensor[],
  log: (line: string) => void,
): Promise<{ ok: boolean }> {
  const V = model.vocabSize;
  const ids = tensor(golden, "input_ids", "i32").data;
  const positions = Array.from(tensor(golden, "prefill_positions", "i32").data);
  const prefillGold = tensor(golden, "prefill_logits", "f32");
  const generated = tensor(golden, "generated_ids", "i32").data;
  const decodeGold = tensor(golden, "decode_logits", "f32");
  if (prefillGold.shape[1] !== V) throw new Error(`${golden.file}: prefill_logits has ${prefillGold.shape[1]} columns, the checkpoint's vocab is ${V}`);
  const margins = golden.meta.margins as number[] | undefined;
  if (!Array.isArray(margins) || margins.length !== generated.length) {
    throw new Error(`${golden.file}: meta.margins must list one margin per generated id (${generated.length})`);
  }

  const checks = [];
  const cache = model.newCache(ids.length + generated.length);
  // The last row of each block's hidden state, read as the block finishes.
  const blockLast: Promise<Float32Array>[] = [];
  const be = model.backend;
  const prefill = await model.prefill(ids, cache, {
    imageEmbeds,
    logitsFor: positions,
    onBlock: (_l, h) => blockLast.push(be.read(be.sliceRows(h, h.shape[0] - 1, 1))),
  });
  checks.push(checkTensor("prefill_logits", prefill, prefillGold.data));
  for (let l = 0; l < blockLast.length; l++) {
    const name = `llm.block.${l}`;
    const last = await blockLast[l];
    if (golden.tensors[name]) checks.push(checkTensor(name, last, tensor(golden, name, "f32").data));
  }

  // Teacher-forced decode: step t feeds generated[t] and must give decode_logits[t].
  const decoded = new Float32Array(generated.length * V);
  let agree = 0;
  let required = 0;
  const disagreements: string[] = [];
  for (let t = 0; t < generated.length; t++) {
    const logits = await model.decodeStep(generated[t], cache);
    decoded.set(logits, t * V);
  }
  checks.push(checkTensor("decode_logits", decoded, decodeGold.data));

  // Argmax: the reference chose generated[t] from the logits before step t (the last prefill
  // row for t = 0, decode row t−1 after).
  const lastPrefillRow = positions.indexOf(ids.length - 1);
  if (lastPrefillRow < 0) throw new Error(`${golden.file}: prefill_positions does not include the last prompt position ${ids.length - 1}`);
  for (let t = 0; t < generated.length; t++) {
    const row = t === 0 ? prefill.subarray(lastPrefillRow * V, (lastPrefillRow + 1) * V) : decoded.subarray((t - 1) * V, t * V);
    const mine = argmax(row);
    if (margins[t] > MARGIN_FOR_ARGMAX) {
      required++;
      if (mine === generated[t]) agree++;
      else disagreements.push(`step ${t}: ${mine} vs ${generated[t]} (margin ${margins[t].toExponential(2)})`);
    }
  }
  for (const c of checks) log(formatCheck(c));
  const argmaxOk = agree === required;
  const skipped = generated.length - required;
  log(`  ${argmaxOk ? "ok  " : "FAIL"} argmax agreement            ${agree}/${required} steps with margin > ${MARGIN_FOR_ARGMAX}${skipped ? ` (${skipped} near-tie step(s) not required)` : ""}${disagreements.length ? "; " + disagreements.join(", ") : ""}`);
  log(`  ntk_alpha=${cache.ntkAlpha} prompt=${ids.length} tokens, ${imageEmbeds.length} image(s)`);
  return { ok: argmaxOk && checks.every((c) => c.ok) };
}
