// Special-token surfaces of the Qwen-VL tokenizer and the small pieces of Python behaviour
// (exception text, repr, str.strip) that the reference's observable output depends on.

/** tokenization_qwen.py:32-34 */
export const ENDOFTEXT = "<|endoftext|>";
export const IMSTART = "<|im_start|>";
export const IMEND = "<|im_end|>";

/** tokenization_qwen.py:38: 205 reserved surfaces `<|extra_0|>`..`<|extra_204|>`. */
export const EXTRAS: readonly string[] = Array.from({ length: 205 }, (_, i) => `<|extra_${i}|>`);

/** tokenization_qwen.py:39-43 */
export const SPECIAL_TOKENS: readonly string[] = [ENDOFTEXT, IMSTART, IMEND, ...EXTRAS];

/** Default tag surfaces, tokenization_qwen.py:99-107. */
export const IMAGE_START_TAG = "<img>";
export const IMAGE_END_TAG = "</img>";
export const IMAGE_PAD_TAG = "<imgpad>";
export const REF_START_TAG = "<ref>";
export const REF_END_TAG = "</ref>";
export const BOX_START_TAG = "<box>";
export const BOX_END_TAG = "</box>";
export const QUAD_START_TAG = "<quad>";
export const QUAD_END_TAG = "</quad>";

/** `IMAGE_ST`, in this order, tokenization_qwen.py:120-126; they follow SPECIAL_TOKENS in id order. */
export const IMAGE_ST: readonly string[] = [
  REF_START_TAG, REF_END_TAG,
  BOX_START_TAG, BOX_END_TAG,
  QUAD_START_TAG, QUAD_END_TAG,
  IMAGE_START_TAG, IMAGE_END_TAG,
  IMAGE_PAD_TAG,
];

/** Every special surface in id order; ids start right after the last BPE rank (tokenization_qwen.py:131-136). */
export const ALL_SPECIAL: readonly string[] = [...SPECIAL_TOKENS, ...IMAGE_ST];

/** Ids per image span between `<img>` and `</img>` (tokenization_qwen.py:44, `IMG_TOKEN_SPAN`). */
export const IMG_TOKEN_SPAN = 256;

/**
 * An error the reference raises as a Python exception. `pyType` is the exception class name and
 * `message` its exact text, so `${pyType}: ${message}` reproduces what Python prints.
 */
export class TokenizerError extends Error {
  constructor(readonly pyType: string, message: string) {
    super(message);
    this.name = "TokenizerError";
  }
  /** The reference's `f"{type(e).__name__}: {e}"`. */
  pythonString(): string {
    return `${this.pyType}: ${this.message}`;
  }
}

/** Python's `repr()` of a str (the quote choice and escapes of CPython's unicode_repr). */
export function pyReprStr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\t") out += "\\t";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (cp < 0x20 || cp === 0x7f) out += "\\x" + cp.toString(16).padStart(2, "0");
    else if (cp >= 0x80 && !isPrintable(ch)) {
      if (cp <= 0xff) out += "\\x" + cp.toString(16).padStart(2, "0");
      else if (cp <= 0xffff) out += "\\u" + cp.toString(16).padStart(4, "0");
      else out += "\\U" + cp.toString(16).padStart(8, "0");
    } else out += ch;
  }
  return out + quote;
}

// Python's str.isprintable(): not in categories Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs (space excepted).
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;
function isPrintable(ch: string): boolean {
  return ch === " " || !NON_PRINTABLE.test(ch);
}

/** Python's `repr()` of the simple JSON-like values that reach error messages (dicts, lists, str, numbers). */
export function pyRepr(v: unknown): string {
  if (typeof v === "string") return pyReprStr(v);
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : pyFloat(v);
  if (typeof v === "boolean") return v ? "True" : "False";
  if (v === null || v === undefined) return "None";
  if (Array.isArray(v)) return "[" + v.map(pyRepr).join(", ") + "]";
  if (typeof v === "object") {
    return "{" + Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pyReprStr(k)}: ${pyRepr(x)}`).join(", ") + "}";
  }
  return String(v);
}

function pyFloat(v: number): string {
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  return String(v);
}

/**
 * Characters Python's `str.isspace()` accepts, which is what argument-less `str.strip()` removes
 * (differs from JS `trim()`: Python includes U+001C..U+001F and U+0085, excludes U+FEFF).
 */
const PY_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

export function isPyWhitespace(ch: string): boolean {
  return PY_WHITESPACE.has(ch.codePointAt(0)!);
}

/** Python's `str.strip()` with no argument. */
export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && PY_WHITESPACE.has(s.charCodeAt(a))) a++;
  while (b > a && PY_WHITESPACE.has(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** Python's `str.rstrip()` with no argument. */
export function pyRstrip(s: string): string {
  let b = s.length;
  while (b > 0 && PY_WHITESPACE.has(s.charCodeAt(b - 1))) b--;
  return s.slice(0, b);
}

/** CPython's default `sys.get_int_max_str_digits()` (3.11+, 3.10.7+): longer digit strings are refused. */
export const PY_INT_MAX_STR_DIGITS = 4300;

/**
 * Python's `int(s)` for a str (base 10): surrounding whitespace, one sign, Unicode decimal digits
 * (category Nd, e.g. full-width `１`), single underscores between digits. The error text is
 * CPython's: `invalid literal for int() with base 10: %.200R` (Objects/longobject.c), i.e. the
 * repr cut to 200 characters, and above 4300 digits the int_max_str_digits ValueError. Values
 * beyond 2^53 come back rounded to the nearest double (Python's are exact).
 */
export function pyInt(s: string): number {
  const t = pyStrip(s);
  const bad = () => new TokenizerError("ValueError", `invalid literal for int() with base 10: ${Array.from(pyReprStr(s)).slice(0, 200).join("")}`);
  let i = 0;
  let sign = 1;
  const chars = Array.from(t);
  if (chars[0] === "+" || chars[0] === "-") {
    sign = chars[0] === "-" ? -1 : 1;
    i = 1;
  }
  if (i >= chars.length) throw bad();
  // CPython validates the whole literal first, then applies the digit limit, then converts.
  const digitValues: number[] = [];
  let prevUnderscore = true; // a leading underscore is invalid
  for (; i < chars.length; i++) {
    const ch = chars[i];
    if (ch === "_") {
      if (prevUnderscore) throw bad();
      prevUnderscore = true;
      continue;
    }
    const d = decimalValue(ch);
    if (d < 0) throw bad();
    digitValues.push(d);
    prevUnderscore = false;
  }
  if (prevUnderscore) throw bad();
  if (digitValues.length > PY_INT_MAX_STR_DIGITS) {
    throw new TokenizerError("ValueError", `Exceeds the limit (${PY_INT_MAX_STR_DIGITS} digits) for integer string conversion: value has ${digitValues.length} digits; use sys.set_int_max_str_digits() to increase the limit`);
  }
  const value = Number(BigInt(digitValues.join("")));
  return value === 0 ? 0 : sign * value; // int("-0") is 0, not a negative zero
}

const ND = /^\p{Nd}$/u;
/** Value of a Unicode decimal digit: Nd characters come in aligned runs of ten starting at zero. */
function decimalValue(ch: string): number {
  if (!ND.test(ch)) return -1;
  let cp = ch.codePointAt(0)!;
  let n = 0;
  while (ND.test(String.fromCodePoint(cp - 1)) && n < 1_000) {
    cp--;
    n++;
  }
  return n % 10;
}

const utf8Fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Python's `bytes.decode("utf-8")` (strict): the text, or the UnicodeDecodeError CPython raises,
 * with its message for the first invalid sequence.
 */
export function pyDecodeUtf8Strict(bytes: Uint8Array): string {
  try {
    return utf8Fatal.decode(bytes);
  } catch {
    throw new TokenizerError("UnicodeDecodeError", `'utf-8' codec can't decode ${utf8ErrorDetail(bytes)}`);
  }
}

/** Where and why CPython's UTF-8 decoder stops (Objects/stringlib/codecs.h, utf8_decode). */
function utf8ErrorDetail(b: Uint8Array): string {
  const at = (i: number, k: number) => k === 0
    ? `byte 0x${b[i].toString(16).padStart(2, "0")} in position ${i}`
    : `bytes in position ${i}-${i + k}`;
  let i = 0;
  while (i < b.length) {
    const lead = b[i];
    if (lead < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) need = 1;
    else if (lead >= 0xe0 && lead <= 0xef) {
      need = 2;
      if (lead === 0xe0) lo = 0xa0;
      if (lead === 0xed) hi = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      need = 3;
      if (lead === 0xf0) lo = 0x90;
      if (lead === 0xf4) hi = 0x8f;
    } else return `${at(i, 0)}: invalid start byte`;
    for (let k = 0; k < need; k++) {
      const j = i + 1 + k;
      if (j >= b.length) return `${at(i, k)}: unexpected end of data`;
      const c = b[j];
      const [l, h] = k === 0 ? [lo, hi] : [0x80, 0xbf];
      if (c < l || c > h) return `${at(i, k)}: invalid continuation byte`;
    }
    i += need + 1;
  }
  return "bytes: unknown error";
}
