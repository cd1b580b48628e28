// Tokenizer throughput on the model card, i.e. the model repository README (bench/corpus/MODEL_CARD.md, copied from the
// Qwen-VL-Chat release): encode and decode MB/s (UTF-8 bytes of the text), median of N runs.
//
//   npx node dist/bench/tokenizer.js [--runs N] [--reps K] [--file PATH]
//
// Each timed run processes the corpus K times (default 8) so that a run lasts tens of ms.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { QwenTokenizer, StreamDecoder, defaultVocabPath } from "../src/tokenizer/index.js";
import { median } from "./stats.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i !== -1 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/** Milliseconds per pass over the corpus, one entry per run. */
function timeRuns(runs: number, f: () => void): number[] {
  // Warm-up long enough for V8 to move the WASM core from its baseline compiler to the
  // optimising one (otherwise the first operation measured looks ~2x slower).
  const w0 = performance.now();
  for (let k = 0; k < 3 || performance.now() - w0 < 500; k++) f();
  const ms: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (let k = 0; k < reps; k++) f();
    ms.push((performance.now() - t0) / reps);
  }
  return ms;
}

const root = dirname(dirname(defaultVocabPath()));
const file = arg("--file", join(root, "bench", "corpus", "MODEL_CARD.md"));
const runs = Number(arg("--runs", "7"));
const reps = Number(arg("--reps", "8"));
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs: expected a positive integer, got ${arg("--runs", "")}`);
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps: expected a positive integer, got ${arg("--reps", "")}`);

const text = readFileSync(file, "utf8");
const mb = Buffer.byteLength(text, "utf8") / 1e6;

const t0 = performance.now();
const tok = QwenTokenizer.load();
const loadMs = performance.now() - t0;

let ids: number[] = [];
const enc = timeRuns(runs, () => {
  ids = tok.encode(text);
});
const encSafe = timeRuns(runs, () => {
  tok.encode(text, { safe: true });
});
const dec = timeRuns(runs, () => {
  tok.decode(ids);
});
const stream = timeRuns(runs, () => {
  const s = new StreamDecoder(tok);
  for (const id of ids) s.push(id);
  s.finish();
});

const rate = (ms: number[]) => `${(mb / (median(ms) / 1000)).toFixed(2)} MB/s (median ${median(ms).toFixed(2)} ms per pass, ${ms.length} runs × ${reps} passes)`;
console.log(`corpus: ${file} (${(mb * 1e6).toFixed(0)} bytes UTF-8, ${text.length} UTF-16 units, ${ids.length} tokens)`);
console.log(`load ranks + WASM BPE: ${loadMs.toFixed(0)} ms`);
console.log(`encode (all specials):  ${rate(enc)}`);
console.log(`encode (safe):          ${rate(encSafe)}`);
console.log(`decode:                 ${rate(dec)}`);
console.log(`stream decode (per id): ${rate(stream)}`);
tok.dispose();
