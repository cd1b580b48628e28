// The model worker of the in-browser page (local.html, local.js): image → preprocess → vision
// tower → tokenizer → decoder → greedy sampling, all client-side, through the browser bundle
// (dist/browser/qwenvl.js, served at /browser/). The kernels run in nested workers started by
// createBackend; ops block this thread in Atomics.wait, which is why it is a worker.
import {
  QwenVL, QwenTokenizer, MemorySource, StreamDecoder, createBackend, fetchCheckpoint, generateStream,
  makeContext, remapImageIds, workerSliceCount,
} from "./browser/qwenvl.js";

let model = null;
let tokenizer = null;

async function load(m) {
  const t0 = performance.now();
  const backend = await createBackend({ name: m.backend, ...(m.threads ? { threads: m.threads } : {}), ...m.kernels });
  const t1 = performance.now();
  postMessage({ type: "progress", text: "fetching the checkpoint…" });
  const source = m.checkpoint.url
    ? await fetchCheckpoint(m.checkpoint.url, { onProgress: (done, total) => postMessage({ type: "progress", text: `checkpoint ${done} of ${total} bytes` }) })
    : new MemorySource(m.checkpoint.files, m.checkpoint.label);
  const t2 = performance.now();
  model = await QwenVL.loadFrom(source, { backend });
  const t3 = performance.now();
  const vocab = await fetch(m.vocabUrl);
  if (!vocab.ok) throw new Error(`GET ${m.vocabUrl} answered ${vocab.status}`);
  tokenizer = await QwenTokenizer.fromVocabBytes(await vocab.arrayBuffer(), m.vocabUrl);
  const t4 = performance.now();
  postMessage({
    type: "loaded", label: source.label, backend: backend.name, threads: backend.threads ?? 1,
    crossOriginIsolated: self.crossOriginIsolated, sharedArrayBuffer: typeof SharedArrayBuffer === "function",
    ms: { backend: t1 - t0, fetch: t2 - t1, model: t3 - t2, tokenizer: t4 - t3, total: t4 - t0 },
  });
}

async function run(m) {
  if (!model) throw new Error("load a model first");
  // The raw format (no ChatML): "<img>NAME</img>\nPROMPT", so that small test checkpoints whose
  // vocabulary lacks the ChatML ids run too.
  const query = m.image ? `<img>${m.image.name}</img>\n${m.prompt}` : m.prompt;
  const ctx = makeContext(tokenizer, query, { chatFormat: "raw" });
  const ids = remapImageIds(ctx.contextTokens, tokenizer.imgStartId, model.imageStartId, { vocabSize: model.vocabSize });
  const slices0 = workerSliceCount();
  const t0 = performance.now();
  const imageEmbeds = [];
  for (const span of model.imageSpans(ids)) {
    if (!m.image || span.path !== m.image.name) throw new Error(`image "${span.path}": only the attached picture can be used`);
    imageEmbeds.push(await model.encodeImage(m.image.bytes, span.path));
  }
  const imageMs = performance.now() - t0;
  const steps = generateStream(model, ids, {
    maxNewTokens: m.maxNewTokens,
    sampling: { doSample: false },
    stopTokenIds: [tokenizer.imEndId, tokenizer.imStartId, model.generation?.eosTokenId ?? tokenizer.eodId],
    imageEmbeds,
  });
  const decoder = new StreamDecoder(tokenizer);
  const out = [];
  let step = await steps.next();
  while (!step.done) {
    out.push(step.value);
    const text = decoder.push(step.value);
    if (text) postMessage({ type: "token", text });
    step = await steps.next();
  }
  decoder.finish();
  const r = step.value;
  postMessage({
    type: "done", ids: out, promptIds: ids, promptTokens: ids.length, reply: tokenizer.decode(out), finishReason: r.finishReason,
    decodeSteps: r.decodeSteps, workerSlices: workerSliceCount() - slices0,
    ms: { image: imageMs, prefill: r.prefillMs, decode: r.decodeMs },
  });
}

self.onmessage = (e) => {
  const m = e.data;
  (m.type === "load" ? load(m) : run(m)).catch((err) => postMessage({ type: "error", message: String(err?.message ?? err) }));
};
