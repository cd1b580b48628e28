// Tokenizer conformance: every case of a tokenizer golden file (format:
// conformance README, section tokenizer-public.msgpack) against this package's tokenizer.
// Prints one line per failed case with the reason and a summary per section.
import { readFileSync } from "node:fs";
import { unpack } from "msgpackr";
import { makeContext, type HistoryTurn } from "../tokenizer/chat.js";
import { fetchAllBoxWithRef, fromListFormat, toListFormat, type ListElement } from "../tokenizer/list-format.js";
import { TokenizerError } from "../tokenizer/special.js";
import { QwenTokenizer } from "../tokenizer/tokenizer.js";

interface Golden {
  meta: { n_vocab: number; special_tokens: Record<string, number> };
  encode: Array<{ text: string; ids?: number[]; decoded?: string; nfc?: string; error?: string }>;
  decode: Array<{ ids: number[]; text: string; text_skip_special: string }>;
  chat: Array<{ query: string; history: [string, string | null][]; system: string; max_window_size: number; raw_text: string; context_tokens: number[] }>;
  list_format: Array<{ list: ListElement[]; text?: string; to_list?: unknown[]; boxes?: unknown[]; error?: string }>;
}

export interface TokenizerConformanceOptions {
  /** Ranks file; default the package's assets/qwen.tiktoken. */
  readonly vocabPath?: string;
}

export async function runTokenizerConformance(
  file: string,
  log: (line: string) => void,
  opts: TokenizerConformanceOptions = {},
): Promise<{ passed: number; failed: number }> {
  let golden: Golden;
  try {
    golden = unpack(readFileSync(file)) as Golden;
  } catch (e) {
    throw new Error(`tokenizer conformance: cannot read ${file}: ${(e as Error).message}`);
  }
  for (const key of ["meta", "encode", "decode", "chat", "list_format"] as const) {
    if (golden?.[key] === undefined) throw new Error(`tokenizer conformance: ${file} has no "${key}"`);
  }
  const tok = opts.vocabPath === undefined ? QwenTokenizer.load() : QwenTokenizer.load(opts.vocabPath);
  let passed = 0;
  let failed = 0;
  try {
    const section = (name: string, n: number, check: (i: number) => string | null) => {
      let ok = 0;
      for (let i = 0; i < n; i++) {
        let reason: string | null;
        try {
          reason = check(i);
        } catch (e) {
          reason = `unexpected error: ${errorString(e)}`;
        }
        if (reason === null) ok++;
        else log(`  FAIL ${name}[${i}]: ${reason}`);
      }
      log(`tokenizer ${name}: ${ok}/${n} passed`);
      passed += ok;
      failed += n - ok;
    };

    section("meta", 1, () => {
      if (golden.meta.n_vocab !== tok.nVocab) return `n_vocab ${tok.nVocab}, expected ${golden.meta.n_vocab}`;
      const expected = Object.entries(golden.meta.special_tokens);
      if (expected.length !== tok.specialTokens.size) return `${tok.specialTokens.size} special tokens, expected ${expected.length}`;
      for (const [surface, id] of expected) {
        if (tok.specialTokens.get(surface) !== id) return `special ${surface} has id ${tok.specialTokens.get(surface)}, expected ${id}`;
      }
      return null;
    });

    section("encode", golden.encode.length, (i) => {
      const c = golden.encode[i];
      const where = `text ${preview(c.text)}`;
      if (c.error !== undefined) return expectError(() => tok.encode(c.text), c.error, where);
      const nfc = c.text.normalize("NFC");
      if (nfc !== c.nfc) return `${where}: NFC ${preview(nfc)}, expected ${preview(c.nfc ?? "")}`;
      const ids = tok.encode(c.text);
      const d = diffArrays(ids, c.ids ?? []);
      if (d !== null) return `${where}: ids ${d}`;
      const decoded = tok.decode(c.ids ?? []);
      if (decoded !== c.decoded) return `${where}: decoded ${diffStrings(decoded, c.decoded ?? "")}`;
      return null;
    });

    section("decode", golden.decode.length, (i) => {
      const c = golden.decode[i];
      const text = tok.decode(c.ids);
      if (text !== c.text) return `ids ${preview(JSON.stringify(c.ids))}: text ${diffStrings(text, c.text)}`;
      const skipped = tok.decode(c.ids, { skipSpecialTokens: true });
      if (skipped !== c.text_skip_special) return `ids ${preview(JSON.stringify(c.ids))}: skip_special_tokens text ${diffStrings(skipped, c.text_skip_special)}`;
      return null;
    });

    section("chat", golden.chat.length, (i) => {
      const c = golden.chat[i];
      const ctx = makeContext(tok, c.query, {
        history: c.history.map((h) => [h[0], h[1] ?? null] as HistoryTurn),
        system: c.system,
        maxWindowSize: c.max_window_size,
      });
      const where = `query ${preview(c.query)} (${c.history.length} turns, window ${c.max_window_size})`;
      if (ctx.rawText !== c.raw_text) return `${where}: raw_text ${diffStrings(ctx.rawText, c.raw_text)}`;
      const d = diffArrays(ctx.contextTokens, c.context_tokens);
      if (d !== null) return `${where}: context_tokens ${d}`;
      return null;
    });

    section("list_format", golden.list_format.length, (i) => {
      const c = golden.list_format[i];
      const where = `list ${preview(JSON.stringify(c.list))}`;
      const run = () => {
        const text = fromListFormat(c.list);
        if (c.text !== undefined && text !== c.text) return `text ${diffStrings(text, c.text)}`;
        const toList = toListFormat(tok, text);
        if (c.to_list !== undefined && !deepEqual(toList, c.to_list)) return `to_list ${preview(JSON.stringify(toList))}, expected ${preview(JSON.stringify(c.to_list))}`;
        const boxes = fetchAllBoxWithRef(tok, text);
        if (c.boxes !== undefined && !deepEqual(boxes, c.boxes)) return `boxes ${preview(JSON.stringify(boxes))}, expected ${preview(JSON.stringify(c.boxes))}`;
        return null;
      };
      if (c.error !== undefined) {
        let mismatch: string | null = null;
        const r = expectError(() => {
          mismatch = run();
        }, c.error, where);
        return mismatch !== null ? `${where}: ${mismatch}` : r;
      }
      const r = run();
      return r === null ? null : `${where}: ${r}`;
    });
  } finally {
    tok.dispose();
  }
  log(`tokenizer conformance: ${passed} passed, ${failed} failed`);
  return { passed, failed };
}

function errorString(e: unknown): string {
  if (e instanceof TokenizerError) return e.pythonString();
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Runs `f`, which must raise the reference's exception `expected` ("Type: message"). */
function expectError(f: () => void, expected: string, where: string): string | null {
  try {
    f();
  } catch (e) {
    const got = errorString(e);
    return got === expected ? null : `${where}: error ${preview(got)}, expected ${preview(expected)}`;
  }
  return `${where}: no error, expected ${preview(expected)}`;
}

function preview(s: string, n = 60): string {
  const t = JSON.stringify(s);
  return t.length > n ? t.slice(0, n) + "…" : t;
}

function diffArrays(got: readonly number[], want: readonly number[]): string | null {
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) return `differ at ${i}: got ${JSON.stringify(got.slice(i, i + 8))}, expected ${JSON.stringify(want.slice(i, i + 8))}`;
  }
  if (got.length !== want.length) return `length ${got.length}, expected ${want.length}`;
  return null;
}

function diffStrings(got: string, want: string): string {
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  return `differs at char ${i}: got ${preview(got.slice(i), 40)}, expected ${preview(want.slice(i), 40)}`;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a as object).sort();
    const kb = Object.keys(b as object).sort();
    if (!deepEqual(ka, kb)) return false;
    return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}
