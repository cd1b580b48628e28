// The Qwen-VL tokenizer (tokenization_qwen.py, class QWenTokenizer): byte-level BPE through the
// `tiktoken` WASM core with Qwen's ranks and pre-tokenisation pattern, 217 special tokens after the
// ranks, NFC before encoding, `<img>PATH</img>` spans as path bytes, and decoding with invalid UTF-8
// replaced like Python's `errors="replace"`.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageFile } from "../package-files.js";
import { Tiktoken, initBpeCore } from "./bpe-core.node.js";
import { findImageSpans, imageSpanIds, replaceClosedTag, type ImageSpan } from "./image-spans.js";
import {
  ALL_SPECIAL, BOX_END_TAG, BOX_START_TAG, ENDOFTEXT, IMAGE_END_TAG, IMAGE_PAD_TAG, IMAGE_START_TAG,
  IMEND, IMSTART, QUAD_END_TAG, QUAD_START_TAG, REF_END_TAG, REF_START_TAG, TokenizerError, pyDecodeUtf8Strict, pyReprStr,
} from "./special.js";

/** tokenization_qwen.py:31 (`PAT_STR`), the pre-tokenisation split applied before BPE. */
export const PAT_STR = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

export type SpecialSet = "all" | Iterable<string>;

export interface EncodeOptions {
  /**
   * Special surfaces that become special ids when they occur in the text. Default "all", the
   * reference's `tokenize(allowed_special="all")` (tokenization_qwen.py:243).
   */
  readonly allowedSpecial?: SpecialSet;
  /** Special surfaces whose presence is an error. Default none (tokenization_qwen.py:244). */
  readonly disallowedSpecial?: SpecialSet;
  /**
   * For untrusted text: every special surface (`<|im_end|>`, `<img>`, ...) is encoded as plain
   * text, exactly as BPE encodes any other characters. Overrides the two sets above.
   */
  readonly safe?: boolean;
}

export interface DecodeOptions {
  /** Drop every special id (the reference keeps ids below `<|endoftext|>`, tokenization_qwen.py:375-376). */
  readonly skipSpecialTokens?: boolean;
}

export interface BpeEncodeOptions {
  readonly allowedSpecial?: SpecialSet;
  /** Default "all": every special surface not allowed is an error (tiktoken's `Encoding.encode`). */
  readonly disallowedSpecial?: SpecialSet;
}

/** `assets/qwen.tiktoken` of this package, from the compiled (dist/src/tokenizer) or source location. */
export function defaultVocabPath(): string {
  return packageFile(join("assets", "qwen.tiktoken"));
}

// `ignoreBOM: true` keeps a leading U+FEFF like Python's bytes.decode("utf-8"); the WHATWG decoder
// substitutes U+FFFD per maximal invalid subpart, which is also CPython's rule.
const utf8Replace = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8Encoder = new TextEncoder();

export class QwenTokenizer {
  /** Number of BPE ranks (151,643 for the real vocabulary). */
  readonly nRanks: number;
  /** Ranks plus special tokens (151,860). */
  readonly nVocab: number;
  /** Surface -> id for all 217 special tokens. */
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly eodId: number;
  readonly imStartId: number;
  readonly imEndId: number;
  readonly refStartId: number;
  readonly refEndId: number;
  readonly boxStartId: number;
  readonly boxEndId: number;
  readonly quadStartId: number;
  readonly quadEndId: number;
  readonly imgStartId: number;
  readonly imgEndId: number;
  readonly imgPadId: number;

  private readonly bpe: Tiktoken;
  private readonly specialById: string[];

  private constructor(ranksText: string, source: string) {
    this.nRanks = checkRanks(ranksText, source);
    const special = new Map<string, number>();
    ALL_SPECIAL.forEach((s, i) => special.set(s, this.nRanks + i));
    this.specialTokens = special;
    this.specialById = [...ALL_SPECIAL];
    this.nVocab = this.nRanks + ALL_SPECIAL.length;
    const id = (s: string) => special.get(s)!;
    this.eodId = id(ENDOFTEXT);
    this.imStartId = id(IMSTART);
    this.imEndId = id(IMEND);
    this.refStartId = id(REF_START_TAG);
    this.refEndId = id(REF_END_TAG);
    this.boxStartId = id(BOX_START_TAG);
    this.boxEndId = id(BOX_END_TAG);
    this.quadStartId = id(QUAD_START_TAG);
    this.quadEndId = id(QUAD_END_TAG);
    this.imgStartId = id(IMAGE_START_TAG);
    this.imgEndId = id(IMAGE_END_TAG);
    this.imgPadId = id(IMAGE_PAD_TAG);
    this.bpe = new Tiktoken(ranksText, Object.fromEntries(special), PAT_STR);
  }

  /** Loads a tiktoken ranks file (`base64-token rank` per line), by default the package's assets/qwen.tiktoken. */
  static load(vocabPath: string = defaultVocabPath()): QwenTokenizer {
    let text: string;
    try {
      text = readFileSync(vocabPath, "utf8");
    } catch (e) {
      throw new Error(`QwenTokenizer.load: cannot read ranks file ${vocabPath}: ${(e as Error).message}`);
    }
    return new QwenTokenizer(text, vocabPath);
  }

  /**
   * Builds a tokenizer from the bytes of a ranks file (UTF-8), e.g. a fetched qwen.tiktoken. Async
   * because a browser instantiates the BPE core's WebAssembly first (bpe-core.browser.ts).
   */
  static async fromVocabBytes(bytes: Uint8Array | ArrayBuffer, source = "<ranks bytes>"): Promise<QwenTokenizer> {
    await initBpeCore();
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new Error(`QwenTokenizer: ranks file ${source} is not valid UTF-8`);
    }
    return new QwenTokenizer(text, source);
  }

  /** Builds a tokenizer from the text of a ranks file. */
  static fromRanksText(ranksText: string, source = "<ranks text>"): QwenTokenizer {
    return new QwenTokenizer(ranksText, source);
  }

  /** Frees the WASM BPE core; the tokenizer is unusable afterwards. */
  dispose(): void {
    this.bpe.free();
  }

  /**
   * `tokenizer.encode(text, ...)` of the reference: NFC, BPE with special surfaces, then each
   * `<img>PATH</img>` span turned into path bytes padded to 256 ids (tokenization_qwen.py:240-302).
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const nfc = text.normalize("NFC");
    if (opts.safe) return Array.from(this.bpe.encode_ordinary(nfc));
    const ids = this.bpeEncode(nfc, {
      allowedSpecial: opts.allowedSpecial ?? "all",
      disallowedSpecial: opts.disallowedSpecial ?? [],
    });
    return this.expandImageSpans(ids);
  }

  /**
   * tiktoken's `Encoding.encode` alone: no NFC, no image-span rewriting. The default disallows every
   * special surface that is not allowed, with tiktoken's error text.
   */
  bpeEncode(text: string, opts: BpeEncodeOptions = {}): number[] {
    const allowed = this.resolveSet(opts.allowedSpecial ?? [], "allowedSpecial");
    const disallowedSpec = opts.disallowedSpecial ?? "all";
    const disallowed = disallowedSpec === "all"
      ? ALL_SPECIAL.filter((s) => !allowed.has(s))
      : [...this.resolveSet(disallowedSpec, "disallowedSpecial")];
    if (disallowed.length > 0) {
      const hit = firstSurface(text, disallowed);
      if (hit !== null) throw disallowedSpecialError(hit);
    }
    const allowedArg = allowed.size === ALL_SPECIAL.length ? "all" : [...allowed];
    return Array.from(this.bpe.encode(text, allowedArg, []));
  }

  private resolveSet(spec: SpecialSet, what: string): Set<string> {
    if (spec === "all") return new Set(ALL_SPECIAL);
    if (typeof spec === "string") throw new Error(`${what}: expected "all" or a list of special surfaces, got the string ${pyReprStr(spec)}`);
    const out = new Set<string>();
    for (const s of spec) if (this.specialTokens.has(s)) out.add(s);
    return out;
  }

  /** tokenization_qwen.py:290-302 on ids: `_encode_imgurl` for every closed `<img>` .. `</img>`. */
  private expandImageSpans(ids: number[]): number[] {
    if (!ids.includes(this.imgStartId)) return ids;
    return replaceClosedTag(ids, [this.imgStartId], [this.imgEndId], (run) => {
      const inner = run.slice(1, -1);
      const bad = inner.findIndex((id) => id >= this.nRanks);
      // `b''.join(img_tokens)` over tokens where special ones are str (tokenization_qwen.py:292)
      if (bad !== -1) throw new TokenizerError("TypeError", `sequence item ${bad}: expected a bytes-like object, str found`);
      return imageSpanIds(this.bpe.decode(Uint32Array.from(inner)), this.imgStartId, this.imgEndId, this.imgPadId);
    }, (run) => run);
  }

  /**
   * `tokenizer.decode(ids, skip_special_tokens=...)` (tokenization_qwen.py:356-377): image spans
   * back to `<img>PATH</img>`, all token bytes joined, then UTF-8 with U+FFFD for invalid bytes.
   */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    return utf8Replace.decode(this.decodeBytes(ids, opts));
  }

  /**
   * Every token's bytes joined, special tokens as their surfaces, nothing else: the reference's
   * `b''.join(map(self.decoder.get, tokens))` in to_list_format (tokenization_qwen.py:370-374),
   * which, unlike decode, does not rewrite image spans (an `<img>` inside a run stays text).
   */
  tokenBytes(ids: ArrayLike<number>): Uint8Array {
    return this.bpe.decode(Uint32Array.from(this.checkIds(ids, "decode")));
  }

  /** The byte string `decode` turns into text. */
  decodeBytes(ids: ArrayLike<number>, opts: DecodeOptions = {}): Uint8Array {
    const list = this.checkIds(ids, "decode");
    const skip = opts.skipSpecialTokens === true;
    const keep = (id: number) => !skip || id < this.eodId;
    if (!list.includes(this.imgStartId)) return this.bpe.decode(Uint32Array.from(skip ? list.filter(keep) : list));
    const chunks: Uint8Array[] = [];
    replaceClosedTag<number, null>(list, [this.imgStartId], [this.imgEndId], (run) => {
      const url = this.imageUrlBytes(run);
      if (!skip) chunks.push(utf8Encoder.encode(IMAGE_START_TAG));
      chunks.push(url);
      if (!skip) chunks.push(utf8Encoder.encode(IMAGE_END_TAG));
      return [];
    }, (run) => {
      chunks.push(this.bpe.decode(Uint32Array.from(run.filter(keep))));
      return [];
    });
    return concatBytes(chunks);
  }

  /**
   * `_decode_imgurl` (tokenization_qwen.py:362-367): bytes up to the first pad, strict UTF-8, then
   * tiktoken's `encode(url)` (every special surface disallowed) whose tokens decode to the same bytes.
   */
  private imageUrlBytes(run: number[]): Uint8Array {
    const inner = run.slice(1, -1);
    const pad = inner.indexOf(this.imgPadId);
    if (pad === -1) throw new TokenizerError("ValueError", `${this.imgPadId} is not in list`);
    const path = inner.slice(0, pad);
    if (path.some((b) => b > 255)) throw new TokenizerError("ValueError", "bytes must be in range(0, 256)");
    const bytes = Uint8Array.from(path);
    const url = pyDecodeUtf8Strict(bytes);
    const hit = firstSurface(url, ALL_SPECIAL);
    if (hit !== null) throw disallowedSpecialError(hit);
    return bytes;
  }

  /**
   * Paths and positions of the `<img>` spans of a prompt encoded by this tokenizer, as the model
   * reads them (see `findImageSpans`; for a checkpoint with other image ids use that function).
   */
  imageSpans(ids: ArrayLike<number>): ImageSpan[] {
    return findImageSpans(ids, this.imgStartId);
  }

  /** The bytes of one BPE token or the surface of a special one. */
  idToToken(id: number): Uint8Array | string {
    this.checkIds([id], "idToToken");
    return id >= this.nRanks ? this.specialById[id - this.nRanks] : this.bpe.decode_single_token_bytes(id);
  }

  /** The id of a special surface (string) or of the BPE token with exactly these bytes; undefined if none. */
  tokenToId(token: string | Uint8Array): number | undefined {
    if (typeof token === "string") {
      const special = this.specialTokens.get(token);
      if (special !== undefined) return special;
      token = utf8Encoder.encode(token);
    }
    try {
      return this.bpe.encode_single_token(token);
    } catch {
      return undefined;
    }
  }

  isSpecial(id: number): boolean {
    return id >= this.nRanks && id < this.nVocab;
  }

  private checkIds(ids: ArrayLike<number>, what: string): number[] {
    const list = Array.from(ids);
    for (let i = 0; i < list.length; i++) {
      const id = list[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.nVocab) {
        throw new Error(`${what}: id ${id} at position ${i} is not a token id (vocabulary size ${this.nVocab})`);
      }
    }
    return list;
  }
}

/** Checks the ranks file's shape so that a wrong file fails here, not inside WASM; returns the rank count. */
function checkRanks(text: string, source: string): number {
  let n = 0;
  let lineNo = 0;
  let pos = 0;
  while (pos < text.length) {
    let nl = text.indexOf("\n", pos);
    if (nl === -1) nl = text.length;
    const line = text.slice(pos, nl).replace(/\r$/, "");
    pos = nl + 1;
    lineNo++;
    if (line.length === 0) continue;
    const sp = line.indexOf(" ");
    const rank = sp > 0 ? line.slice(sp + 1) : "";
    if (sp <= 0 || !/^[0-9]+$/.test(rank) || !/^[A-Za-z0-9+/]+=*$/.test(line.slice(0, sp))) {
      throw new Error(`${source}:${lineNo}: expected "<base64 token> <rank>", got ${JSON.stringify(line.slice(0, 80))}`);
    }
    if (Number(rank) !== n) {
      throw new Error(`${source}:${lineNo}: rank ${rank} out of order (expected ${n}); special ids follow the ranks, so they must be 0..N-1`);
    }
    n++;
  }
  if (n === 0) throw new Error(`${source}: no ranks`);
  return n;
}

/** Leftmost occurrence of any of `surfaces` in `text` (a regex alternation's `search`, as tiktoken does). */
function firstSurface(text: string, surfaces: readonly string[]): string | null {
  let best: string | null = null;
  let bestAt = Infinity;
  for (const s of surfaces) {
    const at = text.indexOf(s);
    if (at !== -1 && at < bestAt) {
      best = s;
      bestAt = at;
    }
  }
  return best;
}

/** tiktoken/core.py `raise_disallowed_special_token`. */
function disallowedSpecialError(token: string): TokenizerError {
  const r = pyReprStr(token);
  return new TokenizerError("ValueError",
    `Encountered text corresponding to disallowed special token ${r}.\n` +
    `If you want this text to be encoded as a special token, pass it to \`allowed_special\`, e.g. \`allowed_special={${r}, ...}\`.\n` +
    `If you want this text to be encoded as normal text, disable the check for this token by passing \`disallowed_special=(enc.special_tokens_set - {${r}})\`.\n` +
    "To disable this check for all special tokens, pass `disallowed_special=()`.\n");
}

function concatBytes(chunks: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
