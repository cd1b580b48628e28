// Full-size conformance: goldens of the upstream PyTorch code for a full-size Int4 checkpoint
// (the published config: 48 ViT blocks, 32 decoder layers, vocab 151,936), and this runtime's
// error against them on every precision path. Too heavy for `npm test` (a 9.7 GB checkpoint,
// minutes per path on 2 cores); docs/precision.md ("Full size") has the commands and results.
//
//   prepare --dev DIR [--seed N]      what the GPU machine needs: the checkpoint plan, the prompt
//                                     (ChatML, one image), the upstream files, the image and the
//                                     Python scripts; prints the command to run there
//   merge --parts DIR --cases DIR     the returned files → one case directory (vision parts merged)
//   compare --cases DIR --checkpoint DIR [--backend wasm|wasm-fast|reference] [--only vision|llm]
//           [--images DIR] [--threads N]
//                                     every case against the checkpoint, one line per tensor
//                                     (rel L2, max |diff|), like `qwenvl conformance`. On a 24 GB
//                                     machine run each kind in its own process (--only): the
//                                     decoder's model and the vision case's tower together do not fit
//
// The checkpoint on both machines is tools/pcg-checkpoint.ts's (TypeScript here,
// tools/pcg_checkpoint.py there); compare the SHA-256 lines both print before trusting a golden.
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { pack, unpack } from "msgpackr";
import { QwenTokenizer } from "../src/tokenizer/tokenizer.js";
import { makeContext } from "../src/tokenizer/chat.js";
import { parseModelConfig } from "../src/config.js";
import { packageFile } from "../src/package-files.js";
import { createBackend, disposeBackend } from "../src/ops/select.js";
import { runVisionCase } from "../src/conformance/vision.js";
import { runLlmCase } from "../src/conformance/llm.js";
import { planFor } from "./pcg-checkpoint.js";

/** The image of the case: a PNG, so that decoding is bit-exact and only arithmetic differs. */
const IMAGE = "radar.png";
const SYSTEM = "You are a helpful assistant."; // what Qwen-VL-Chat's chat() passes
const QUERY =
  `Picture 1: <img>${IMAGE}</img>\nWhat does this chart compare? Describe each axis, the colours of the series, ` +
  "which model scores highest on every benchmark and by how much, and what the overall conclusion is.";
/** Traced vision blocks: first, middle, last of 48. Decoder layers: first, middle, last of 32. */
const VISION_BLOCKS = [0, 23, 47];
const LLM_BLOCKS = [0, 15, 31];
const GREEDY_STEPS = 8;
const UPSTREAM_FILES = ["modeling_qwen.py", "visual.py", "configuration_qwen.py", "qwen_generation_utils.py"];

function sharedDir(): string {
  // /work/shared beside the checkouts (the conformance README's layout), or $QWENVL_SHARED.
  const d = process.env.QWENVL_SHARED ?? path.resolve(path.dirname(packageFile("package.json")), "..", "shared");
  if (!fs.existsSync(path.join(d, "upstream"))) throw new Error(`no upstream/ in ${d}; set QWENVL_SHARED to the shared folder`);
  return d;
}

function prepare(dev: string, seed: number): void {
  const shared = sharedDir();
  fs.mkdirSync(path.join(dev, "upstream"), { recursive: true });
  fs.mkdirSync(path.join(dev, "images"), { recursive: true });
  const plan = planFor("full");
  fs.writeFileSync(path.join(dev, "full-plan.json"), JSON.stringify(plan));
  const config = parseModelConfig(JSON.parse(plan.textFiles["config.json"]), "config.json");
  const tok = QwenTokenizer.load();
  const ids = makeContext(tok, QUERY, { system: SYSTEM }).contextTokens;
  const start = config.visual.imageStartId;
  const a = ids.indexOf(start);
  const b = ids.indexOf(start + 1);
  if (a < 0 || b !== a + 257) throw new Error(`prompt: expected one 256-position image span, got <img> at ${a}, </img> at ${b}`);
  const L = ids.length;
  // Every text position would be ~70 rows of 151,936 logits (40 MB): take the first three, three
  // image positions (first, middle, last) and the last four, which the decode continues from.
  const positions = [...new Set([0, 1, 2, a + 1, a + 128, b - 1, L - 4, L - 3, L - 2, L - 1])].sort((x, y) => x - y);
  const prompt = {
    name: "image",
    input_ids: ids,
    images: [IMAGE],
    prefill_positions: positions,
    vision_blocks: VISION_BLOCKS,
    llm_blocks: LLM_BLOCKS,
    greedy_steps: GREEDY_STEPS,
    source: "tools/fullsize-goldens.ts prepare",
    checkpoint: { writer: "tools/pcg-checkpoint.ts / tools/pcg_checkpoint.py", preset: "full", seed },
  };
  fs.writeFileSync(path.join(dev, "prompt.json"), JSON.stringify(prompt));
  for (const f of UPSTREAM_FILES) fs.copyFileSync(path.join(shared, "upstream", f), path.join(dev, "upstream", f));
  fs.copyFileSync(path.join(shared, "images", IMAGE), path.join(dev, "images", IMAGE));
  for (const f of ["pcg_checkpoint.py", "fullsize_goldens.py"]) fs.copyFileSync(packageFile(`tools/${f}`), path.join(dev, f));
  console.log(`prompt: ${L} tokens (image span ${a}..${b}), logits at [${positions}]`);
  console.log(`on the GPU machine, in ${path.basename(dev)}/:`);
  console.log(
    `  python3 fullsize_goldens.py --upstream upstream --images images --prompt prompt.json --plan full-plan.json ` +
      `--write /tmp/ckpt --seed ${seed} --out OUT`,
  );
}

interface RawCase {
  meta: Record<string, unknown>;
  tensors: Record<string, unknown>;
}

function merge(partsDir: string, casesDir: string): void {
  fs.mkdirSync(casesDir, { recursive: true });
  const files = fs.readdirSync(partsDir).filter((f) => f.endsWith(".msgpack")).sort();
  const vision = new Map<string, RawCase>();
  for (const f of files) {
    const m = /^(vision-.+)\.part\d+\.msgpack$/.exec(f);
    if (!m) {
      fs.copyFileSync(path.join(partsDir, f), path.join(casesDir, f));
      console.log(`${f}`);
      continue;
    }
    const c = unpack(fs.readFileSync(path.join(partsDir, f))) as RawCase;
    const into = vision.get(m[1]);
    if (!into) {
      const { part: _, ...meta } = c.meta;
      vision.set(m[1], { meta, tensors: { ...c.tensors } });
    } else {
      Object.assign(into.tensors, c.tensors); // pixels_u8 is the same in every part
    }
  }
  for (const [name, c] of vision) {
    fs.writeFileSync(path.join(casesDir, `${name}.msgpack`), pack(c));
    console.log(`${name}.msgpack: ${Object.keys(c.tensors).join(", ")}`);
  }
}

async function compare(opts: { cases: string; checkpoint: string; backend: string; only?: string; images: string; threads?: number }): Promise<boolean> {
  const backend = await createBackend({ name: opts.backend, threads: opts.threads });
  const log = (line: string) => console.log(line);
  let ok = true;
  try {
    for (const f of fs.readdirSync(opts.cases).filter((x) => x.endsWith(".msgpack")).sort()) {
      const isVision = f.startsWith("vision-");
      if (opts.only !== undefined && opts.only !== (isVision ? "vision" : "llm")) continue;
      const t0 = performance.now();
      log(`case ${f} (backend ${opts.backend})`);
      const caseOpts = { checkpointDir: opts.checkpoint, imagesDir: opts.images, backend, log };
      const r = isVision ? await runVisionCase(path.join(opts.cases, f), caseOpts) : await runLlmCase(path.join(opts.cases, f), caseOpts);
      ok &&= r.ok;
      log(`  => ${r.ok ? "PASS" : "FAIL"} ${f} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }
    const tuning = (backend as { tuning?: unknown }).tuning; // the WASM backend's kernel choice
    if (tuning !== undefined) log(`GPTQ kernels: ${JSON.stringify(tuning)}`);
  } finally {
    await disposeBackend(backend);
  }
  return ok;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const args = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    if (!rest[i].startsWith("--")) throw new Error(`fullsize-goldens: unexpected argument ${rest[i]}`);
    if (i + 1 < rest.length) args.set(rest[i].slice(2), rest[++i]);
    else throw new Error(`fullsize-goldens: ${rest[i]} needs a value`);
  }
  const need = (k: string) => {
    const v = args.get(k);
    if (!v) throw new Error(`fullsize-goldens ${cmd}: --${k} is required`);
    return v;
  };
  if (cmd === "prepare") {
    prepare(need("dev"), Number(args.get("seed") ?? "0"));
    return 0;
  }
  if (cmd === "merge") {
    merge(need("parts"), need("cases"));
    return 0;
  }
  if (cmd === "compare") {
    const only = args.get("only");
    if (only !== undefined && only !== "vision" && only !== "llm") throw new Error(`--only must be vision or llm, got ${JSON.stringify(only)}`);
    const ok = await compare({
      cases: need("cases"),
      checkpoint: need("checkpoint"),
      backend: args.get("backend") ?? "wasm",
      only: args.get("only"),
      images: args.get("images") ?? path.join(sharedDir(), "images"),
      threads: args.has("threads") ? Number(args.get("threads")) : undefined,
    });
    return ok ? 0 : 1;
  }
  throw new Error("usage: fullsize-goldens prepare --dev DIR | merge --parts DIR --cases DIR | compare --cases DIR --checkpoint DIR [--backend NAME] [--only vision|llm]");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error((e as Error).message);
      process.exit(1);
    },
  );
}
