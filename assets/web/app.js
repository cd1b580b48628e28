// The chat page of `qwenvl serve`: plain JavaScript, no build step, no third-party code.
// It talks to the same OpenAI-compatible API any client uses (POST /v1/chat/completions with
// stream: true) and draws the reply's <ref>/<box> markup on the latest picture the way
// src/product/boxes.ts does (0–1000 grid scaled to the picture, one Tableau colour per ref,
// the label on a dark backdrop at the box's top-left corner).

const $ = (id) => document.getElementById(id);
const TABLEAU = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/** OpenAI-format conversation so far; pictures ride along as data: URLs. */
let messages = [];
/** Pictures attached to the next message: { dataUrl, name }. */
let pending = [];
/** The latest picture of the conversation: { dataUrl, img }. */
let latest = null;
let controller = null;

async function init() {
  try {
    const r = await fetch("/v1/models");
    const j = await r.json();
    $("model").textContent = j.data?.[0]?.id ?? "?";
  } catch {
    $("model").textContent = "(server unreachable)";
  }
  $("file").addEventListener("change", attach);
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      send();
    }
  });
  $("stop").addEventListener("click", () => controller?.abort());
  $("reset").addEventListener("click", () => {
    messages = [];
    pending = [];
    latest = null;
    $("log").replaceChildren();
    $("attachments").replaceChildren();
    $("picture").hidden = true;
    $("picture-note").textContent = "";
  });
}

function attach() {
  const f = $("file").files?.[0];
  if (!f) return;
  const reader = new FileReader();
  reader.onload = () => {
    pending.push({ dataUrl: reader.result, name: f.name });
    const img = document.createElement("img");
    img.src = reader.result;
    img.alt = f.name;
    $("attachments").append(img);
    $("file").value = "";
  };
  reader.readAsDataURL(f);
}

function bubble(role, text, pictures = []) {
  const div = document.createElement("div");
  div.className = `msg ${role}`;
  div.dataset.role = role;
  const who = document.createElement("span");
  who.className = "role";
  who.textContent = role === "user" ? "You" : role === "assistant" ? "Qwen-VL" : "Error";
  div.append(who);
  for (const p of pictures) {
    const img = document.createElement("img");
    img.src = p.dataUrl;
    img.alt = p.name;
    div.append(img);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text; // markup such as <box> is shown as text, never as HTML
  div.append(body);
  $("log").append(div);
  div.scrollIntoView({ block: "end" });
  return body;
}

async function send() {
  const text = $("prompt").value.trim();
  if (!text && pending.length === 0) return;
  if (controller) return; // one reply at a time
  const pictures = pending;
  pending = [];
  $("attachments").replaceChildren();
  $("prompt").value = "";
  const content = [...pictures.map((p) => ({ type: "image_url", image_url: { url: p.dataUrl } })), { type: "text", text }];
  messages.push({ role: "user", content });
  if (pictures.length) latest = { dataUrl: pictures[pictures.length - 1].dataUrl, img: null };
  bubble("user", text, pictures);
  const out = bubble("assistant", "");

  const body = { messages: [{ role: "system", content: $("system").value }, ...messages], stream: true, stream_options: { include_usage: true } };
  const maxTokens = Number($("max-tokens").value);
  if (maxTokens >= 1) body.max_tokens = maxTokens;
  if ($("greedy").checked) body.temperature = 0;
  else if ($("temperature").value !== "") body.temperature = Number($("temperature").value);

  controller = new AbortController();
  $("send").disabled = true;
  $("stop").hidden = false;
  $("status").textContent = "thinking… (the picture is encoded and the prompt read first)";
  const t0 = performance.now();
  let reply = "";
  let usage = null;
  let finish = null;
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error(j.error?.message ?? `HTTP ${r.status}`);
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let at;
      while ((at = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, at);
        buf = buf.slice(at + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) usage = j.usage;
          const c = j.choices?.[0];
          if (c?.delta?.content) {
            reply += c.delta.content;
            out.textContent = reply;
            $("status").textContent = "answering…";
          }
          if (c?.finish_reason) finish = c.finish_reason;
        }
      }
    }
    messages.push({ role: "assistant", content: reply });
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    $("status").textContent = `done in ${secs} s` + (usage ? ` · ${usage.prompt_tokens} prompt + ${usage.completion_tokens} reply tokens` : "") + (finish ? ` · ${finish}` : "");
    $("status").dataset.state = "done";
    await drawBoxes(reply);
  } catch (e) {
    if (e.name === "AbortError") {
      $("status").textContent = "stopped";
      messages.pop();
    } else {
      bubble("error", String(e.message ?? e));
      $("status").textContent = "";
      messages.pop();
    }
    $("status").dataset.state = "error";
  } finally {
    controller = null;
    $("send").disabled = false;
    $("stop").hidden = true;
  }
}

/**
 * The reply's boxes in order, each with the ref right before it (tokenization_qwen.py:437-448):
 * [{ box: [x1, y1, x2, y2] on 0..1000, ref? }].
 */
export function parseBoxes(text) {
  const parts = [...text.matchAll(/<(ref|box)>([\s\S]*?)<\/\1>/g)];
  const boxes = [];
  parts.forEach((m, i) => {
    if (m[1] !== "box") return;
    const nums = m[2].replace(/[()]/g, "").split(",").map((s) => Number(s.trim()));
    if (nums.length !== 4 || nums.some((n) => !Number.isInteger(n))) return;
    const prev = parts[i - 1];
    const adjacent = prev && prev[1] === "ref" && prev.index + prev[0].length === m.index;
    boxes.push({ box: nums, ...(adjacent ? { ref: prev[2].trim() } : {}) });
  });
  return boxes;
}

function loadImg(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the picture cannot be shown"));
    img.src = src;
  });
}

async function drawBoxes(reply) {
  const boxes = parseBoxes(reply);
  window.qwenvlBoxes = [];
  if (!latest || boxes.length === 0) return;
  latest.img ??= await loadImg(latest.dataUrl);
  const img = latest.img;
  const w = img.naturalWidth, h = img.naturalHeight;
  const canvas = $("picture");
  canvas.width = w;
  canvas.height = h;
  canvas.hidden = false;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, 0);
  // Sizes as matplotlib draws them at 100 dpi (see src/product/boxes.ts).
  const pt = 100 / 72;
  const fontPt = Math.max(Math.floor(Math.sqrt(w * h) / 30), 15);
  const lw = Math.max(fontPt / 4, 1) * pt;
  let color = TABLEAU[0];
  let refs = 0;
  const drawn = boxes.map((b) => {
    if (b.ref !== undefined) color = TABLEAU[refs++ % TABLEAU.length];
    const [x1, y1, x2, y2] = [Math.trunc((b.box[0] / 1000) * w), Math.trunc((b.box[1] / 1000) * h), Math.trunc((b.box[2] / 1000) * w), Math.trunc((b.box[3] / 1000) * h)];
    return { x1, y1, x2, y2, color, ref: b.ref };
  });
  for (const d of drawn) {
    g.strokeStyle = d.color;
    g.lineWidth = lw;
    g.strokeRect(d.x1, d.y1, d.x2 - d.x1, d.y2 - d.y1);
  }
  const px = fontPt * pt;
  g.font = `${px}px "Noto Sans SC", sans-serif`;
  g.textBaseline = "top";
  for (const d of drawn) {
    if (d.ref === undefined) continue;
    const pad = 0.7 * px;
    const tw = g.measureText(d.ref).width;
    g.fillStyle = "rgba(0,0,0,0.8)";
    g.fillRect(d.x1 - pad, d.y1 - pad, tw + 2 * pad, px * 1.45 + 2 * pad);
    g.fillStyle = labelColor(d.color);
    g.fillText(d.ref, d.x1, d.y1);
  }
  window.qwenvlBoxes = drawn;
  $("picture-note").textContent = `${drawn.length} box(es): ` + drawn.map((d) => `${d.ref ?? "·"} (${d.x1},${d.y1})–(${d.x2},${d.y2})`).join("; ");
}

/** Light text colour on the dark backdrop (tokenization_qwen.py:540-542). */
function labelColor(hex) {
  const v = [1, 3, 5].map((i) => Math.max(parseInt(hex.slice(i, i + 2), 16) / 255, 0.2));
  const m = v.indexOf(Math.max(...v));
  v[m] = Math.max(0.8, v[m]);
  return `rgb(${v.map((x) => Math.round(x * 255)).join(",")})`;
}

init();
