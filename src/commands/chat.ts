// `qwenvl chat`: one-shot with --prompt, otherwise an interactive session with history.
//
// Like the reference's `model.chat()` loop (MODEL_CARD.md "Quickstart"): each turn's query is the
// pictures attached since the last turn (`Picture N: <img>PATH</img>`) followed by the text, the
// reply streams to stdout, and history carries the turns. When a reply holds <ref>/<box> markup
// and --boxes OUT.png is given, the boxes are drawn on the latest picture
// (draw_bbox_on_latest_picture, src/product/boxes.ts).
import * as path from "node:path";
import * as readline from "node:readline";
import { parseArgs } from "node:util";
import { chatStream, resolveImageBytes, type ChatOptions, type ChatResult, type ChatStats } from "../chat.js";
import { fromListFormat, type ListElement } from "../tokenizer/list-format.js";
import type { HistoryTurn } from "../tokenizer/chat.js";
import { drawBoxesOnLatestPicture, writePng } from "../product/boxes.js";
import {
  GENERATION_FLAGS_HELP, GENERATION_OPTIONS, MODEL_FLAGS_HELP, MODEL_OPTIONS, UsageError, generationFromFlags,
  loadFromFlags, progressReporter, type LoadedModel,
} from "./common.js";

export const CHAT_HELP = `qwenvl chat — talk to Qwen-VL-Chat about pictures

Usage: qwenvl chat --model DIR [--image PATH ...] [--prompt TEXT] [options]

With --prompt: one reply, streamed to stdout, then exit. Without: an interactive session (lines
from stdin; history kept between turns). Session commands:
  /image PATH     attach a picture to the next message (repeatable)
  /boxes OUT.png  draw the boxes of the last reply on its picture
  /reset          forget the history and attached pictures
  /help           this list
  /quit           leave (also Ctrl-D); Ctrl-C stops a reply being generated

Options:
${MODEL_FLAGS_HELP}
  --image PATH         a picture for the first message (repeatable); paths are read from disk
  --prompt TEXT        one-shot: the message; the reply is printed and the command exits
  --system TEXT        system prompt (default "You are a helpful assistant.")
${GENERATION_FLAGS_HELP}
  --boxes OUT.png      after each reply with <ref>/<box> markup, draw its boxes on the latest
                       picture (0–1000 grid scaled to the picture; labels in Noto Sans SC)
  --verbose            timings after each reply: load, image encode, prefill and decode tok/s
  --quiet              no progress bars or notes on stderr

Example (no real weights needed; the reply is noise):
  qwenvl chat --model synthetic --image test/fixtures/images/demo.jpeg --prompt "What is this?"
`;

interface Session {
  readonly lm: LoadedModel;
  history: HistoryTurn[];
  pending: string[];
  last: ChatResult | null;
  readonly base: ChatOptions;
  readonly boxesOut?: string;
  readonly verbose: boolean;
  readonly quiet: boolean;
}

export async function runChat(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      ...GENERATION_OPTIONS,
      image: { type: "string", multiple: true },
      prompt: { type: "string" },
      system: { type: "string" },
      boxes: { type: "string" },
      verbose: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(CHAT_HELP);
    return 0;
  }
  const generation = generationFromFlags("chat", values);
  if (values.boxes !== undefined && !/\.png$/i.test(values.boxes)) throw new UsageError(`chat: --boxes ${values.boxes}: the drawing is a PNG; give a name ending in .png`);
  const lm = await loadFromFlags("chat", values, values.quiet);
  const s: Session = {
    lm,
    history: [],
    pending: [...(values.image ?? [])],
    last: null,
    // The command line is the user's own: pictures are read wherever the given paths point.
    base: {
      imagesDir: process.cwd(),
      allowPathsOutsideImagesDir: true,
      system: values.system,
      generation,
      onProgress: progressReporter(values.quiet),
    },
    boxesOut: values.boxes,
    verbose: values.verbose,
    quiet: values.quiet,
  };
  for (const p of s.pending) resolveImageBytes(p, s.base); // a missing file fails now, not after the load
  try {
    if (values.prompt !== undefined) {
      await turn(s, values.prompt);
      return 0;
    }
    await interactive(s);
    return 0;
  } finally {
    await lm.dispose();
  }
}

/** One message: the pending pictures and `text` → streamed reply → history, boxes, timings. */
async function turn(s: Session, text: string, signal?: AbortSignal, prefix = ""): Promise<void> {
  const elements: ListElement[] = [...s.pending.map((image) => ({ image })), { text }];
  const query = fromListFormat(elements);
  s.pending = [];
  const stream = chatStream(s.lm.model, s.lm.tokenizer, query, { ...s.base, history: s.history, signal });
  // The prefix waits for the first text, so progress bars of the image and prefill come first.
  let step = await stream.next();
  process.stdout.write(prefix);
  while (!step.done) {
    process.stdout.write(step.value);
    step = await stream.next();
  }
  process.stdout.write("\n");
  const r = step.value;
  s.history = r.history;
  s.last = r;
  if (s.verbose) process.stderr.write(timings(s.lm.loadMs, r.stats) + "\n");
  if (s.boxesOut) await drawBoxes(s, s.boxesOut, false);
}

async function drawBoxes(s: Session, out: string, complain: boolean): Promise<void> {
  if (!s.last) {
    if (complain) process.stderr.write("no reply yet\n");
    return;
  }
  // history holds this turn's query too, as the reference's does after chat() (MODEL_CARD.md).
  const d = await drawBoxesOnLatestPicture(s.lm.tokenizer, s.last.response, s.history, (p) => resolveImageBytes(p, s.base));
  if (!d) {
    if (complain || !s.quiet) process.stderr.write("boxes: the reply has no <box> (or there is no picture to draw on)\n");
    return;
  }
  writePng(out, d.image);
  if (!s.quiet) {
    const list = d.boxes.map((b) => `${b.ref ?? "·"} (${b.x1},${b.y1})-(${b.x2},${b.y2})`).join("; ");
    process.stderr.write(`boxes: ${d.boxes.length} drawn on ${d.picture} → ${path.resolve(out)}: ${list}\n`);
  }
}

export function timings(loadMs: number, st: ChatStats): string {
  const rate = (n: number, ms: number) => (ms > 0 ? (n / (ms / 1000)).toFixed(2) : "-");
  return [
    `load ${(loadMs / 1000).toFixed(2)} s`,
    `images ${st.images} in ${(st.imageMs / 1000).toFixed(2)} s`,
    `prefill ${st.promptTokens} tokens in ${(st.prefillMs / 1000).toFixed(2)} s (${rate(st.promptTokens, st.prefillMs)} tok/s)`,
    `decode ${st.generatedTokens} tokens in ${(st.decodeMs / 1000).toFixed(2)} s (${rate(st.decodeSteps, st.decodeMs)} tok/s)`,
    `finish: ${st.finishReason}`,
  ].join(" | ");
}

async function interactive(s: Session): Promise<void> {
  const tty = Boolean(process.stdin.isTTY);
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: tty, prompt: "User: " });
  let generating: AbortController | null = null;
  rl.on("SIGINT", () => {
    if (generating) generating.abort();
    else rl.close();
  });
  if (!s.quiet) process.stderr.write("interactive chat: /image PATH, /boxes OUT.png, /reset, /help, /quit\n");
  if (tty) rl.prompt();
  for await (const raw of rl) {
    const line = raw.trim();
    try {
      if (line === "") {
        // nothing
      } else if (line === "/quit" || line === "/exit") {
        break;
      } else if (line === "/help") {
        process.stdout.write(CHAT_HELP.slice(CHAT_HELP.indexOf("Session commands:"), CHAT_HELP.indexOf("Options:")));
      } else if (line === "/reset") {
        s.history = [];
        s.pending = [];
        s.last = null;
        process.stderr.write("history cleared\n");
      } else if (line.startsWith("/image")) {
        const p = line.slice("/image".length).trim();
        if (!p) throw new UsageError("/image needs a path");
        resolveImageBytes(p, s.base);
        s.pending.push(p);
        process.stderr.write(`attached ${p} (sent with the next message)\n`);
      } else if (line.startsWith("/boxes")) {
        const out = line.slice("/boxes".length).trim();
        if (!/\.png$/i.test(out)) throw new UsageError("/boxes needs an output file name ending in .png");
        await drawBoxes(s, out, true);
      } else if (line.startsWith("/")) {
        throw new UsageError(`unknown command ${line.split(/\s/)[0]} (try /help)`);
      } else {
        generating = new AbortController();
        await turn(s, line, generating.signal, "Assistant: ");
      }
    } catch (e) {
      process.stderr.write(`error: ${(e as Error).message}\n`);
    } finally {
      generating = null;
    }
    if (tty) rl.prompt();
  }
  rl.close();
}
