// A checkpoint whose weights make the model say a chosen reply: the demo's synthetic checkpoint
// (real vocabulary, real Int4 layout) with the weights rewritten so that the product tests see a
// real <ref>/<box> answer come out of the real pipeline (tokenise → vision → prefill → decode).
//
// How: every decoder block contributes nothing (GPTQ scales and biases 0, so each linear outputs
// 0 and the residual stream keeps the token embedding), so the last position's hidden state is
// its token's embedding. Token chain[i] embeds as the unit vector e_i; lm_head row chain[i+1] is
// 8·e_i and every other row 0. After RMSNorm (ln_f = 1) the logit of the successor is
// 8·sqrt(hidden) ≈ 90 and all others 0: greedy and sampling (top-p 0.5) both follow the chain.
// The prompt's last token is "\n" (after "<|im_start|>assistant"), so the chain starts there.
import * as fs from "node:fs";
import * as path from "node:path";
import { demoConfig } from "../../src/demo.js";
import { configsDir, writeSyntheticCheckpoint } from "../../tools/make-checkpoint.js";
import { QwenTokenizer } from "../../src/tokenizer/tokenizer.js";

const F16_ONE = 0x3c00;
const F16_EIGHT = 0x4800;

/**
 * Token ids of "<ref>狗</ref><box>(12,34),(567 ,890)</box>", all distinct (digits are single
 * tokens in Qwen's BPE, so the coordinates use each digit once and the second comma is " ,").
 * Box on the 0..1000 grid: (12, 34)–(567, 890), label "狗".
 */
export function boxReplyIds(t: QwenTokenizer): number[] {
  const one = (s: string) => {
    const ids = t.encode(s);
    if (ids.length !== 1) throw new Error(`${JSON.stringify(s)} is ${ids.length} tokens`);
    return ids[0];
  };
  return [
    t.refStartId, one("狗"), t.refEndId, t.boxStartId,
    one("("), one("1"), one("2"), one(","), one("3"), one("4"), one("),("),
    one("5"), one("6"), one("7"), one(" ,"), one("8"), one("9"), one("0"), one(")"), t.boxEndId,
  ];
}

export const BOX_REPLY = "<ref>狗</ref><box>(12,34),(567 ,890)</box>";

/** Writes the scripted checkpoint into `dir`: after the prompt it says `reply` then <|im_end|>. */
export function writeScriptedCheckpoint(dir: string, reply: readonly number[], tokenizer: QwenTokenizer): void {
  const configJson = demoConfig();
  const generationJson = JSON.parse(fs.readFileSync(path.join(configsDir(), "generation_config.json"), "utf8"));
  writeSyntheticCheckpoint({ configJson, generationJson, out: dir, seed: 0, dtype: "int4", shardSize: 2_000_000_000 });
  const chain = [tokenizer.encode("\n")[0], ...reply, tokenizer.imEndId];
  const C = configJson.hidden_size as number;
  if (new Set(chain).size !== chain.length) throw new Error("scripted checkpoint: the chain's tokens must be distinct");
  if (chain.length - 1 > C) throw new Error(`scripted checkpoint: at most ${C} steps`);

  const file = path.join(dir, "model.safetensors");
  const fd = fs.openSync(file, "r+");
  try {
    const head = Buffer.alloc(8);
    fs.readSync(fd, head, 0, 8, 0);
    const n = Number(head.readBigUInt64LE(0));
    const hbuf = Buffer.alloc(n);
    fs.readSync(fd, hbuf, 0, n, 8);
    const header = JSON.parse(hbuf.toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const at = (name: string) => {
      const e = header[name];
      if (!e || e.dtype !== "F16") throw new Error(`scripted checkpoint: ${name} missing or not F16`);
      return { start: 8 + n + e.data_offsets[0], bytes: e.data_offsets[1] - e.data_offsets[0], shape: e.shape };
    };
    const fill = (name: string, value: number) => {
      const t = at(name);
      const b = Buffer.alloc(t.bytes);
      for (let i = 0; i < t.bytes; i += 2) b.writeUInt16LE(value, i);
      fs.writeSync(fd, b, 0, b.length, t.start);
    };
    for (const name of Object.keys(header)) {
      if (/^transformer\.h\.\d+\..*\.(scales|bias)$/.test(name)) fill(name, 0);
    }
    fill("transformer.ln_f.weight", F16_ONE);
    fill("lm_head.weight", 0);
    const row = (name: string, id: number, dim: number, value: number) => {
      const t = at(name);
      const b = Buffer.alloc(C * 2);
      b.writeUInt16LE(value, dim * 2);
      fs.writeSync(fd, b, 0, b.length, t.start + id * C * 2);
    };
    for (let i = 0; i + 1 < chain.length; i++) {
      row("transformer.wte.weight", chain[i], i, F16_ONE);
      row("lm_head.weight", chain[i + 1], i, F16_EIGHT);
    }
  } finally {
    fs.closeSync(fd);
  }
}
