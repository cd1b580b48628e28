// The tiktoken WASM core under Node: tiktoken/lite loads its .wasm from its package when imported.
// Browser twin: bpe-core.browser.ts (the bundle swaps `*.node.js` imports, tools/build-browser.ts).
export { Tiktoken } from "tiktoken/lite";

/** Nothing to do under Node: the core is ready once imported. */
export async function initBpeCore(): Promise<void> {}
