// Qwen-VL's "list format" for multimodal messages and the grounding markup
// `<ref>NAME</ref><box>(x1,y1),(x2,y2)</box>` (tokenization_qwen.py:379-456).
import { replaceClosedTag } from "./image-spans.js";
import {
  BOX_END_TAG, BOX_START_TAG, ENDOFTEXT, IMAGE_END_TAG, IMAGE_ST, IMAGE_START_TAG, REF_END_TAG,
  REF_START_TAG, TokenizerError, pyDecodeUtf8Strict, pyInt, pyRepr, pyStrip,
} from "./special.js";
import type { QwenTokenizer } from "./tokenizer.js";

/** An element given to `fromListFormat`. */
export type ListElement =
  | { readonly image: string }
  | { readonly text: string }
  | { readonly box: readonly (readonly number[])[]; readonly ref?: string };

/** An element returned by `toListFormat`: exactly one key. */
export type ParsedElement =
  | { text: string }
  | { image: string }
  | { ref: string }
  | { box: string }
  | { quad: string };

export interface BoxWithRef {
  /** [x1, y1, x2, y2] in the model's 0..1000 coordinates. */
  box: [number, number, number, number];
  ref?: string;
}

/** from_list_format (tokenization_qwen.py:407-425): images become `Picture N:<img>..</img>\n`. */
export function fromListFormat(list: readonly ListElement[]): string {
  let text = "";
  let numImages = 0;
  for (const ele of list as readonly Record<string, unknown>[]) {
    if (ele !== null && typeof ele === "object" && "image" in ele) {
      numImages++;
      text += `Picture ${numImages}:`;
      text += IMAGE_START_TAG + pyStr(ele.image) + IMAGE_END_TAG;
      text += "\n";
    } else if (ele !== null && typeof ele === "object" && "text" in ele) {
      text += pyStr(ele.text);
    } else if (ele !== null && typeof ele === "object" && "box" in ele) {
      if ("ref" in ele) text += REF_START_TAG + pyStr(ele.ref) + REF_END_TAG;
      for (const box of iterate(ele.box)) {
        const b = box as ArrayLike<unknown>;
        const at = (i: number) => {
          if (b === null || typeof b !== "object" || i >= b.length) throw new TokenizerError("IndexError", "list index out of range");
          return percentD(b[i]);
        };
        text += BOX_START_TAG + `(${at(0)},${at(1)}),(${at(2)},${at(3)})` + BOX_END_TAG;
      }
    } else {
      throw new TokenizerError("ValueError", "Unsupport element: " + pyRepr(ele));
    }
  }
  return text;
}

/** `str + x` in Python accepts only str. */
function pyStr(v: unknown): string {
  if (typeof v !== "string") throw new TokenizerError("TypeError", `can only concatenate str (not "${pyTypeName(v)}") to str`);
  return v;
}

function iterate(v: unknown): Iterable<unknown> {
  if (v !== null && typeof v === "object" && Symbol.iterator in v) return v as Iterable<unknown>;
  throw new TokenizerError("TypeError", `'${pyTypeName(v)}' object is not iterable`);
}

function pyTypeName(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "string") return "str";
  if (typeof v === "boolean") return "bool";
  if (v === null || v === undefined) return "NoneType";
  if (Array.isArray(v)) return "list";
  return "dict";
}

/** Python's `'%d' % x`: ints as is, floats truncated toward zero. */
function percentD(v: unknown): string {
  if (typeof v === "boolean") return v ? "1" : "0";
  if (typeof v !== "number") throw new TokenizerError("TypeError", `%d format: a real number is required, not ${pyTypeName(v)}`);
  if (Number.isNaN(v)) throw new TokenizerError("ValueError", "cannot convert float NaN to integer");
  if (!Number.isFinite(v)) throw new TokenizerError("OverflowError", "cannot convert float infinity to integer");
  return BigInt(Math.trunc(v)).toString();
}

const TAGGED_KEYS = ["image", "ref", "box", "quad"] as const;

/**
 * to_list_format (tokenization_qwen.py:379-405): NFC, BPE where only the image/grounding tags and
 * `<|endoftext|>` are special (any other special surface is tiktoken's disallowed error), then
 * every `<img>`/`<ref>`/`<box>`/`<quad>` run to its closing tag becomes one element.
 */
export function toListFormat(tokenizer: QwenTokenizer, text: string): ParsedElement[] {
  const nfc = text.normalize("NFC");
  const ids = tokenizer.bpeEncode(nfc, { allowedSpecial: [...IMAGE_ST, ENDOFTEXT] });
  const starts = [tokenizer.imgStartId, tokenizer.refStartId, tokenizer.boxStartId, tokenizer.quadStartId];
  const ends = [tokenizer.imgEndId, tokenizer.refEndId, tokenizer.boxEndId, tokenizer.quadEndId];
  // `b''.join(...).decode('utf-8')` over token bytes, special tokens as their surfaces
  const textOf = (run: number[]) => pyDecodeUtf8Strict(tokenizer.tokenBytes(run));
  const element = (run: number[]): ParsedElement[] => {
    if (run.length === 0) return [];
    const k = starts.indexOf(run[0]);
    if (k !== -1 && run[run.length - 1] === ends[k]) {
      return [{ [TAGGED_KEYS[k]]: textOf(run.slice(1, -1)) } as ParsedElement];
    }
    return [{ text: textOf(run) }];
  };
  return replaceClosedTag(ids, starts, ends, element, element);
}

/**
 * `_fetch_all_box_with_ref` (tokenization_qwen.py:437-448): every `<box>` of `text` as four ints,
 * with the `<ref>` text (stripped) when a ref element comes right before the box.
 */
export function fetchAllBoxWithRef(tokenizer: QwenTokenizer, text: string): BoxWithRef[] {
  const list = toListFormat(tokenizer, text);
  const out: BoxWithRef[] = [];
  list.forEach((ele, i) => {
    if (!("box" in ele)) return;
    const parts = ele.box.replaceAll("(", "").replaceAll(")", "").split(",").map(pyInt);
    if (parts.length !== 4) throw new TokenizerError("AssertionError", "");
    const item: BoxWithRef = { box: [parts[0], parts[1], parts[2], parts[3]] };
    const prev = i > 0 ? list[i - 1] : undefined;
    if (prev !== undefined && "ref" in prev) item.ref = pyStrip(prev.ref);
    out.push(item);
  });
  return out;
}

/** `_fetch_latest_picture` (tokenization_qwen.py:427-435): the last image of the response, else of the newest history query. */
export function fetchLatestPicture(tokenizer: QwenTokenizer, response: string, history: readonly (readonly [string, string | null])[] = []): string | null {
  const texts = [...history.map(([q]) => q), response];
  for (let t = texts.length - 1; t >= 0; t--) {
    const list = toListFormat(tokenizer, texts[t]);
    for (let i = list.length - 1; i >= 0; i--) {
      const ele = list[i];
      if ("image" in ele) return ele.image;
    }
  }
  return null;
}
