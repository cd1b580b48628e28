// Incremental decoding for streamed generation. Bytes of each new token go through a streaming
// UTF-8 decoder, which holds back an incomplete multi-byte character until its remaining bytes
// arrive and replaces definitely invalid bytes exactly as the one-shot decode does, so the
// concatenated pieces always equal `tokenizer.decode(allIds, opts)`.
import type { DecodeOptions, QwenTokenizer } from "./tokenizer.js";

export class StreamDecoder {
  private readonly utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
  /** Ids of an `<img>` span not yet closed; a span decodes only as a whole (tokenization_qwen.py:362-367). */
  private span: number[] | null = null;

  constructor(private readonly tokenizer: QwenTokenizer, private readonly opts: DecodeOptions = {}) {}

  /** Feeds one id; returns the text that became complete (possibly ""). */
  push(id: number): string {
    return this.pushMany([id]);
  }

  /** Feeds several ids at once. */
  pushMany(ids: ArrayLike<number>): string {
    const tok = this.tokenizer;
    let out = "";
    let run: number[] = [];
    const flushRun = () => {
      if (run.length > 0) out += this.utf8.decode(tok.decodeBytes(run, this.opts), { stream: true });
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (this.span !== null) {
        this.span.push(id);
        if (id === tok.imgEndId) {
          const span = this.span;
          this.span = null;
          out += this.utf8.decode(tok.decodeBytes(span, this.opts), { stream: true });
        }
      } else if (id === tok.imgStartId) {
        flushRun();
        this.span = [id];
      } else {
        run.push(id);
      }
    }
    flushRun();
    return out;
  }

  /**
   * Ends the stream: returns what was held back (an incomplete character becomes U+FFFD, as in
   * the one-shot decode). An `<img>` never closed raises the reference's "Unclosed image token".
   */
  finish(): string {
    if (this.span !== null) {
      const span = this.span;
      this.span = null;
      this.tokenizer.decodeBytes(span, this.opts); // throws the reference's error
    }
    return this.utf8.decode();
  }
}
