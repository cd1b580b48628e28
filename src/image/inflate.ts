// The one place that inflates zlib streams (PNG IDAT, zTXt is not read). Node gets node:zlib,
// which reports truncated or corrupt streams precisely; elsewhere (browsers, workers) the
// standard DecompressionStream("deflate") does the same job.

type Inflater = (data: Uint8Array, maxBytes: number) => Promise<Uint8Array>;
let inflater: Inflater | undefined;

async function pickInflater(): Promise<Inflater> {
  const g = globalThis as { process?: { versions?: { node?: string } } };
  if (g.process?.versions?.node) {
    const zlib = await import("node:zlib");
    return async (data, maxBytes) => {
      try {
        return new Uint8Array(zlib.inflateSync(data, { maxOutputLength: maxBytes }));
      } catch (e) {
        if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw new TooLarge();
        throw e;
      }
    };
  }
  return async (data, maxBytes) => {
    const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("deflate"));
    const reader = stream.getReader();
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel();
        throw new TooLarge();
      }
      parts.push(value);
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  };
}

class TooLarge extends Error {}

/**
 * Inflate a complete zlib (RFC 1950) stream; `what` names the data in the error message. Output
 * beyond `maxBytes` is refused without being produced (a zlib bomb stops there).
 */
export async function inflateZlib(data: Uint8Array, what: string, maxBytes = 2 ** 31 - 1): Promise<Uint8Array> {
  inflater ??= await pickInflater();
  try {
    return await inflater(data, maxBytes);
  } catch (e) {
    if (e instanceof TooLarge) throw new Error(`${what}: decompresses to more than ${maxBytes} bytes, more than the image header implies`);
    throw new Error(`${what}: compressed data is corrupt or truncated (${(e as Error).message})`);
  }
}
