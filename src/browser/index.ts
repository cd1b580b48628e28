// Entry of the browser bundle (dist/browser/qwenvl.js, tools/build-browser.ts): the package API,
// plus what a page needs to run the model client-side. Run it in a dedicated worker: the kernel
// pool blocks in Atomics.wait, which a page's main thread may not (docs/browser.md).
//
//   const backend = await createBackend({ name: "wasm" });        // fetches kernels, starts workers
//   const model = await QwenVL.loadFrom(await fetchCheckpoint("/checkpoint/"), { backend });
//   const tokenizer = await QwenTokenizer.fromVocabBytes(await (await fetch(vocabUrl)).arrayBuffer());
//   const { response } = await chat(model, tokenizer, query, { images: { "photo.jpg": bytes }, readImageFiles: false });
export * from "../index.js";
export { workerSliceCount } from "../ops/wasm/pool.js";
export { PLATFORM } from "../ops/wasm/platform.node.js";
