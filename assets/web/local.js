// The in-browser page (local.html): the whole pipeline runs client-side in local-worker.js (a
// dedicated worker: the kernel pool blocks in Atomics.wait, which a page's main thread may not).
// This script only moves files and text between the form and that worker.
// window.qwenvlLocal holds the last load and run reports (read by the end-to-end test).
const $ = (id) => document.getElementById(id);
const worker = new Worker("/local-worker.js", { type: "module" });
const state = (window.qwenvlLocal = { load: null, run: null });
let picture = null; // { name, bytes }

function status(text, s) {
  $("status").textContent = text;
  if (s) $("status").dataset.state = s;
  else delete $("status").dataset.state;
}

const params = new URLSearchParams(location.search);
if (params.get("checkpoint")) $("checkpoint-url").value = params.get("checkpoint");
if (params.get("backend")) $("backend").value = params.get("backend");
$("threads").value = params.get("threads") ?? String(navigator.hardwareConcurrency || 1);

worker.onmessage = (e) => {
  const m = e.data;
  if (m.type === "progress") status(m.text);
  else if (m.type === "loaded") {
    state.load = m;
    $("model").textContent = `${m.label} · ${m.backend} · ${m.threads} thread(s)`;
    $("send").disabled = false;
    status(`loaded in ${Math.round(m.ms.total)} ms (kernels and workers ${Math.round(m.ms.backend)}, fetch ${Math.round(m.ms.fetch)}, weights ${Math.round(m.ms.model)}, tokenizer ${Math.round(m.ms.tokenizer)})`, "loaded");
  } else if (m.type === "token") $("reply").textContent += m.text;
  else if (m.type === "done") {
    state.run = m;
    $("reply").textContent = m.reply;
    $("details").textContent = `ids ${JSON.stringify(m.ids)}\nprompt ${m.promptTokens} tokens · image ${Math.round(m.ms.image)} ms · prefill ${Math.round(m.ms.prefill)} ms · decode ${Math.round(m.ms.decode)} ms (${m.decodeSteps} steps) · kernel slices in workers ${m.workerSlices}`;
    $("send").disabled = false;
    status(`${m.ids.length} tokens · ${m.finishReason}`, "done");
  } else if (m.type === "error") {
    state.error = m.message;
    $("send").disabled = !state.load;
    status(m.message, "error");
  }
};

// A worker script that fails to load or throws at the top level never answers: say so.
worker.onerror = (e) => {
  state.error = e.message || "the model worker failed to start";
  status(state.error, "error");
};

$("file").onchange = async () => {
  const f = $("file").files[0];
  if (!f) return;
  picture = { name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) };
  const img = document.createElement("img");
  img.src = URL.createObjectURL(f);
  $("attachments").replaceChildren(img);
};

$("load").onsubmit = async (e) => {
  e.preventDefault();
  status("loading…");
  const threads = Number($("threads").value) || undefined;
  const files = $("checkpoint-dir").files;
  let checkpoint;
  if (files.length > 0) {
    // A picked directory: its own files, by name (webkitRelativePath is "dir/name").
    const entries = {};
    for (const f of files) if (!f.webkitRelativePath.split("/").slice(1, -1).length) entries[f.name] = await f.arrayBuffer();
    checkpoint = { files: entries, label: files[0].webkitRelativePath.split("/")[0] };
  } else checkpoint = { url: new URL($("checkpoint-url").value, location.href).href };
  // ?decodeQ4= / ?prefillQ4= pin the GPTQ kernels (default: the timed probe picks them).
  const kernels = Object.fromEntries(["decodeQ4", "prefillQ4"].filter((k) => params.get(k)).map((k) => [k, params.get(k)]));
  worker.postMessage({ type: "load", checkpoint, backend: $("backend").value, threads, kernels, vocabUrl: new URL("/tokenizer/qwen.tiktoken", location.href).href });
};

$("composer").onsubmit = (e) => {
  e.preventDefault();
  $("send").disabled = true;
  $("reply").textContent = "";
  $("details").textContent = "";
  status("running…");
  worker.postMessage({ type: "run", prompt: $("prompt").value, image: picture, maxNewTokens: Number($("max-tokens").value) || 16 });
};
