// `qwenvl draw-boxes`: the boxes of any response text drawn on a picture (src/product/boxes.ts).
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { loadImage } from "../image/decode.js";
import { QwenTokenizer } from "../tokenizer/tokenizer.js";
import { fetchAllBoxWithRef } from "../tokenizer/list-format.js";
import { drawBoxes, writePng } from "../product/boxes.js";
import { UsageError } from "./common.js";

export const DRAW_BOXES_HELP = `qwenvl draw-boxes — draw <ref>/<box> markup of a response on a picture

Usage: qwenvl draw-boxes --image IMG --text RESPONSE --out OUT.png

  --image IMG      the picture the response talks about (JPEG, PNG, GIF, BMP)
  --text RESPONSE  the response text, e.g. "<ref>the dog</ref><box>(221,423),(569,886)</box>";
                   "-" reads it from stdin
  --out OUT.png    where the drawing goes (PNG, the picture's own size)

Boxes are on Qwen-VL's 0–1000 grid and are scaled to the picture's width and height, as the
reference's draw_bbox_on_latest_picture does; each <ref> gets the next Tableau colour and its
label (CJK included) at the box's top-left corner. Prints one line per box in pixels.

Example:
  qwenvl draw-boxes --image test/fixtures/images/demo.jpeg --out boxes.png \\
    --text "<ref>the dog</ref><box>(221,423),(569,886)</box>"
`;

export async function runDrawBoxes(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      image: { type: "string" },
      text: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(DRAW_BOXES_HELP);
    return 0;
  }
  for (const k of ["image", "text", "out"] as const) {
    if (values[k] === undefined) throw new UsageError(`draw-boxes: --${k} is required`);
  }
  if (!/\.png$/i.test(values.out!)) throw new UsageError(`draw-boxes: --out ${values.out}: the drawing is a PNG; give a name ending in .png`);
  const text = values.text === "-" ? fs.readFileSync(0, "utf8") : values.text!;
  const boxes = fetchAllBoxWithRef(QwenTokenizer.load(), text);
  if (boxes.length === 0) {
    process.stderr.write("draw-boxes: the text has no <box>(x1,y1),(x2,y2)</box>; nothing drawn\n");
    return 1;
  }
  if (!fs.existsSync(values.image!)) throw new Error(`draw-boxes: --image ${values.image}: no such file`);
  const img = await loadImage(new Uint8Array(fs.readFileSync(values.image!)), { name: values.image });
  const d = drawBoxes(img, boxes);
  writePng(values.out!, d.image);
  for (const b of d.boxes) process.stdout.write(`${b.ref ?? "·"}\t(${b.x1},${b.y1})\t(${b.x2},${b.y2})\n`);
  process.stderr.write(`draw-boxes: ${d.boxes.length} box(es) on ${img.width}×${img.height} → ${values.out}\n`);
  return 0;
}
