// The tiktoken WASM core in a browser: tiktoken/lite/init leaves instantiation to the caller, so
// its tiktoken_bg.wasm (copied next to the bundle by tools/build-browser.ts) is fetched and
// instantiated once here. Twin of bpe-core.node.ts.
import { init } from "tiktoken/lite/init";
export { Tiktoken } from "tiktoken/lite/init";

interface FetchGlobal {
  fetch(url: URL): Promise<{ ok: boolean; status: number; arrayBuffer(): Promise<ArrayBuffer> }>;
}

let ready: Promise<void> | undefined;

export function initBpeCore(): Promise<void> {
  ready ??= (async () => {
    const url = new URL("tiktoken_bg.wasm", import.meta.url);
    const r = await (globalThis as unknown as FetchGlobal).fetch(url);
    if (!r.ok) throw new Error(`tokenizer: GET ${url} answered ${r.status} (is dist/browser/ built and served whole?)`);
    const bytes = await r.arrayBuffer();
    await init((imports) => WebAssembly.instantiate(bytes, imports));
  })();
  ready.catch(() => (ready = undefined));
  return ready;
}
