// Progress of long steps (loading weights, encoding an image, prefill) on stderr.
//
// On a terminal: one line redrawn in place, at most every REDRAW_MS,
//   loading weights [██████████░░░░░░░░░░]  52%  5.0/9.7 GB  24.1 s
// Elsewhere (a pipe, a log file, CI): a plain line at each tenth, so logs stay readable.
//
// API
//   const bar = new Progress("loading weights", { unit: "bytes" });
//   bar.update(done, total); ...; bar.done();        // prints the final line with the elapsed time

const REDRAW_MS = 100;
const WIDTH = 24;

export interface ProgressOptions {
  /** How done/total are printed: "bytes" as GB/MB, "count" as "12/48" with the given noun. */
  readonly unit?: "bytes" | "count";
  readonly noun?: string;
  /** Default process.stderr. */
  readonly stream?: NodeJS.WriteStream;
  /** Print nothing (for --quiet). */
  readonly silent?: boolean;
}

export class Progress {
  private readonly t0 = performance.now();
  private lastDraw = 0;
  private lastTenth = -1;
  private finished = false;
  private done_ = 0;
  private total_ = 0;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;

  constructor(readonly label: string, private readonly options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY) && process.env.CI === undefined;
  }

  update(done: number, total: number): void {
    if (this.finished || this.options.silent) return;
    this.done_ = done;
    this.total_ = total;
    const now = performance.now();
    if (this.tty) {
      if (now - this.lastDraw < REDRAW_MS && done < total) return;
      this.lastDraw = now;
      this.stream.write(`\r${this.line()}\x1b[K`);
    } else {
      const tenth = total > 0 ? Math.floor((10 * done) / total) : 0;
      if (tenth <= this.lastTenth || tenth >= 10) return;
      this.lastTenth = tenth;
      this.stream.write(this.line() + "\n");
    }
  }

  /** Ends the bar with a final line (elapsed seconds). */
  done(note = ""): void {
    if (this.finished || this.options.silent) return;
    this.finished = true;
    if (this.total_ > 0) this.done_ = this.total_;
    this.stream.write((this.tty ? "\r" : "") + this.line() + (note ? `  ${note}` : "") + (this.tty ? "\x1b[K\n" : "\n"));
  }

  private line(): string {
    const f = this.total_ > 0 ? Math.min(1, this.done_ / this.total_) : 0;
    const fill = Math.round(f * WIDTH);
    const bar = this.tty ? ` [${"█".repeat(fill)}${"░".repeat(WIDTH - fill)}]` : "";
    const pct = `${Math.floor(f * 100)}%`.padStart(4);
    const amount = this.options.unit === "bytes"
      ? `${fmtBytes(this.done_)}/${fmtBytes(this.total_)}`
      : `${this.done_}/${this.total_}${this.options.noun ? " " + this.options.noun : ""}`;
    const secs = ((performance.now() - this.t0) / 1000).toFixed(1);
    return `${this.label}${bar} ${pct}  ${amount}  ${secs} s`;
  }
}

function fmtBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${(n / 1e6).toFixed(1)} MB`;
}
