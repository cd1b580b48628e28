// A checkpoint fetched over HTTP into memory (a browser's way to load one): the files the loader
// reads are GET'ed from `baseUrl` and handed to it as a MemorySource (source.ts), so
// Checkpoint.fromSource runs exactly the checks it runs on a directory. Which files: config.json,
// generation_config.json and quantize_config.json when present, then model.safetensors.index.json
// and every shard it names, or model.safetensors when there is no index. The whole checkpoint
// ends up in memory (plus the copy in WebAssembly memory once loaded): fine for small models; the
// full 9.7 GB checkpoint does not fit a browser tab (docs/browser.md).
import { INDEX_FILE, SINGLE_FILE, type ProgressFn } from "./checkpoint.js";
import { MemorySource } from "./source.js";

interface FetchResponse {
  readonly ok: boolean;
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } } | null;
  arrayBuffer(): Promise<ArrayBuffer>;
}
export type FetchFn = (url: string) => Promise<FetchResponse>;

export interface FetchCheckpointOptions {
  /** Bytes of safetensors files fetched so far, of the total their Content-Length announced. */
  readonly onProgress?: ProgressFn;
  /** Default globalThis.fetch. */
  readonly fetch?: FetchFn;
}

/** The checkpoint under `baseUrl` (a directory URL; a missing trailing "/" is added). */
export async function fetchCheckpoint(baseUrl: string, options: FetchCheckpointOptions = {}): Promise<MemorySource> {
  const base = baseUrl.endsWith("/") ? baseUrl : baseUrl + "/";
  const get: FetchFn = options.fetch ?? ((u) => (globalThis as unknown as { fetch: FetchFn }).fetch(u));
  const files = new Map<string, Uint8Array>();
  const url = (name: string) => new URL(name, base).href;
  /** null for 404 (an optional file that is absent); any other failure is an error naming the URL. */
  const fetchFile = async (name: string, required: boolean): Promise<FetchResponse | null> => {
    const r = await get(url(name));
    if (r.status === 404 && !required) return null;
    if (!r.ok) throw new Error(`checkpoint ${base}: GET ${url(name)} answered ${r.status}`);
    return r;
  };
  const small = async (name: string, required: boolean) => {
    const r = await fetchFile(name, required);
    if (r) files.set(name, new Uint8Array(await r.arrayBuffer()));
    return r !== null;
  };

  await small("config.json", true);
  await small("generation_config.json", false);
  // quantize_config.json only matters when config.json has no quantization_config (config.ts).
  const config = parseJson(files.get("config.json")!);
  if (!(config && typeof config === "object" && "quantization_config" in config)) await small("quantize_config.json", false);

  let shards: string[];
  if (await small(INDEX_FILE, false)) {
    // Only plain file names are fetched; anything else stays unfetched and Checkpoint.fromSource
    // reports it with its usual message (a shard name with path syntax, a missing shard).
    const index = parseJson(files.get(INDEX_FILE)!) as { weight_map?: unknown } | undefined;
    const map = index?.weight_map;
    const names = map && typeof map === "object" ? Object.values(map as Record<string, unknown>) : [];
    shards = [...new Set(names.filter((n): n is string => typeof n === "string" && /^[^/\\\0]+$/.test(n) && n !== "." && n !== ".."))].sort();
  } else {
    shards = [SINGLE_FILE];
  }

  const responses = await Promise.all(shards.map(async (s) => [s, await fetchFile(s, s !== SINGLE_FILE)] as const));
  const total = responses.reduce((t, [, r]) => t + Number(r?.headers.get("content-length") ?? 0), 0);
  let done = 0;
  await Promise.all(
    responses.map(async ([name, r]) => {
      if (!r) return;
      const reader = r.body?.getReader();
      if (!reader) {
        const b = new Uint8Array(await r.arrayBuffer());
        done += b.byteLength;
        options.onProgress?.(done, total);
        files.set(name, b);
        return;
      }
      const parts: Uint8Array[] = [];
      let n = 0;
      for (;;) {
        const { done: end, value } = await reader.read();
        if (end || !value) break;
        parts.push(value);
        n += value.byteLength;
        done += value.byteLength;
        options.onProgress?.(done, total);
      }
      const b = new Uint8Array(n);
      let o = 0;
      for (const p of parts) {
        b.set(p, o);
        o += p.byteLength;
      }
      files.set(name, b);
    }),
  );
  return new MemorySource(files, base);
}

/** JSON or undefined: a file that does not parse is reported by the loader, which names it. */
function parseJson(b: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(b));
  } catch {
    return undefined;
  }
}
