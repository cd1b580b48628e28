// `<img>PATH</img>` spans in id sequences.
//
// In the tokenizer (tokenization_qwen.py:290-302) a span becomes
//   <img> + one id per UTF-8 byte of PATH (id = byte value) + <imgpad> up to 256 ids + </img>
// and the model (modeling_qwen.py:554-563) finds spans by the ids `image_start_id`,
// `image_start_id + 1` (end) and `image_start_id + 2` (pad) from the checkpoint's config. The real
// checkpoint's image_start_id (151857) equals the tokenizer's `<img>` id; a small test checkpoint
// may use another (tiny-a: 1900), so ids can be moved between the two with `remapImageIds`.
import { IMG_TOKEN_SPAN, TokenizerError } from "./special.js";

/**
 * `_replace_closed_tag` (tokenization_qwen.py:64-90): every run from a start tag to the first
 * matching end tag after it goes through `inclusive`, the runs between through `exclusive`.
 * A start tag without its end tag raises the reference's ValueError.
 */
export function replaceClosedTag<T, U>(
  input: readonly T[],
  startTags: readonly T[],
  endTags: readonly T[],
  inclusive: (run: T[]) => U[],
  exclusive: (run: T[]) => U[],
): U[] {
  const out: U[] = [];
  let end = 0;
  for (;;) {
    const start = findFrom(input, startTags, end);
    if (start === -1) break;
    for (const x of exclusive(input.slice(end, start))) out.push(x);
    const tagIdx = startTags.indexOf(input[start]);
    const close = findFrom(input, [endTags[tagIdx]], start);
    if (close === -1) throw new TokenizerError("ValueError", "Unclosed image token");
    for (const x of inclusive(input.slice(start, close + 1))) out.push(x);
    end = close + 1;
  }
  for (const x of exclusive(input.slice(end))) out.push(x);
  return out;
}

function findFrom<T>(input: readonly T[], candidates: readonly T[], from: number): number {
  for (let i = from; i < input.length; i++) if (candidates.includes(input[i])) return i;
  return -1;
}

/** Ids of one span: `<img>` + path bytes + padding to IMG_TOKEN_SPAN + `</img>` (tokenization_qwen.py:290-300). */
export function imageSpanIds(pathBytes: Uint8Array, startId: number, endId: number, padId: number): number[] {
  if (pathBytes.length > IMG_TOKEN_SPAN) {
    throw new TokenizerError("ValueError", "The content in <img>..</img> is too long");
  }
  const out = new Array<number>(IMG_TOKEN_SPAN + 2);
  out[0] = startId;
  for (let i = 0; i < IMG_TOKEN_SPAN; i++) out[i + 1] = i < pathBytes.length ? pathBytes[i] : padId;
  out[IMG_TOKEN_SPAN + 1] = endId;
  return out;
}

export interface ImageSpan {
  /** Index of the `<img>` id in the sequence. */
  readonly start: number;
  /** Index of the `</img>` id; the image's embeddings replace positions start+1 .. end-1. */
  readonly end: number;
  /** The path or URL written between the tags. */
  readonly path: string;
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The image spans of a prompt as the model sees them (modeling_qwen.py:554-563), for a checkpoint
 * whose `<img>` id is `imageStartId` (`</img>` = +1, `<imgpad>` = +2).
 *
 * Like the reference, the path is read from positions start+1 .. end-2 up to the first pad id, so a
 * span needs at least one pad before its last position: paths of 255 or 256 bytes, which the
 * tokenizer accepts, are rejected here exactly as modeling_qwen.py:562 (`list.index`) rejects them.
 */
export function findImageSpans(ids: ArrayLike<number>, imageStartId: number): ImageSpan[] {
  const endId = imageStartId + 1;
  const padId = imageStartId + 2;
  const spans: ImageSpan[] = [];
  let open = -1;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id === imageStartId) {
      if (open !== -1) throw new Error(`image span: <img> (id ${imageStartId}) at position ${i} inside the span opened at ${open}`);
      open = i;
    } else if (id === endId) {
      if (open === -1) throw new Error(`image span: </img> (id ${endId}) at position ${i} without an opening <img>`);
      spans.push({ start: open, end: i, path: spanPath(ids, open, i, padId) });
      open = -1;
    }
  }
  if (open !== -1) throw new Error(`image span: <img> (id ${imageStartId}) at position ${open} is never closed by </img> (id ${endId})`);
  return spans;
}

function spanPath(ids: ArrayLike<number>, a: number, b: number, padId: number): string {
  const bytes: number[] = [];
  let padded = false;
  // modeling_qwen.py:561: input_ids[a + 1 : b - 1]
  for (let i = a + 1; i < b - 1; i++) {
    if (ids[i] === padId) {
      padded = true;
      break;
    }
    const v = ids[i];
    if (!Number.isInteger(v) || v < 0 || v > 255) {
      throw new Error(`image span at position ${a}: id ${v} at position ${i} is not a path byte (0..255)`);
    }
    bytes.push(v);
  }
  if (!padded) throw new Error(`image span at position ${a}: no <imgpad> (id ${padId}) before position ${b - 1}; the path must be at most ${IMG_TOKEN_SPAN - 2} bytes`);
  try {
    return utf8Strict.decode(Uint8Array.from(bytes));
  } catch {
    throw new Error(`image span at position ${a}: the path bytes are not valid UTF-8`);
  }
}

export interface RemapOptions {
  /** The target vocabulary size: every id must be below it after remapping. */
  readonly vocabSize?: number;
}

/**
 * Moves the three image tag ids from `fromStartId` (`<img>`, `</img>` = +1, `<imgpad>` = +2) to
 * `toStartId`, leaving every other id as is. An ordinary id that already equals one of the target
 * tag ids would be read by the model as a tag, so it is an error, as is any id >= vocabSize.
 */
export function remapImageIds(ids: ArrayLike<number>, fromStartId: number, toStartId: number, opts: RemapOptions = {}): number[] {
  const out = new Array<number>(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const k = id - fromStartId;
    if (k >= 0 && k < 3) out[i] = toStartId + k;
    else {
      if (id >= toStartId && id < toStartId + 3 && fromStartId !== toStartId) {
        throw new Error(`remapImageIds: id ${id} at position ${i} is an ordinary token that equals the target image tag id ${id}`);
      }
      out[i] = id;
    }
    if (opts.vocabSize !== undefined && out[i] >= opts.vocabSize) {
      throw new Error(`remapImageIds: id ${out[i]} at position ${i} is outside the vocabulary of size ${opts.vocabSize}`);
    }
  }
  return out;
}
