// The one place that inflates zlib streams (PNG IDAT, zTXt is not read). Node gets node:zlib,
// which reports truncated or corrupt streams precisely; elsewhere (browsers, workers) the
// standard DecompressionStream("deflate") does the same job.

type Inflater = (data: Uint8Array) => Promise<Uint8Array>;
let inflater: Inflater | undefined;

async function pickInflater(): Promise<Inflater> {
  const g = globalThis as { process?: { versions?: { node?: string } } };
  if (g.process?.versions?.node) {
    const zlib = await import("node:zlib");
    return async (data) => new Uint8Array(zlib.inflateSync(data));
  }
  return async (data) => {
    const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  };
}

/** Inflate a complete zlib (RFC 1950) stream; `what` names the data in the error message. */
export async function inflateZlib(data: Uint8Array, what: string): Promise<Uint8Array> {
  inflater ??= await pickInflater();
  try {
    return await inflater(data);
  } catch (e) {
    throw new Error(`${what}: compressed data is corrupt or truncated (${(e as Error).message})`);
  }
}
