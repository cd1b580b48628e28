// Platform layer of the kernel thread pool, browser side (twin of platform.node.ts, same exports).
//
// Two browser rules shape it:
//   - a Worker created by a thread only starts running once that thread returns to its event loop,
//     and the pool's constructor blocks (Atomics.wait) until every worker is up. So the workers are
//     started beforehand, asynchronously, by prepareKernelPlatform (createBackend calls it), and a
//     started worker then receives its start data while the creating thread blocks;
//   - Atomics.wait is refused on a page's main thread: the model itself runs in a dedicated worker
//     (assets/web/local-worker.js), which starts these kernel workers as nested workers.
// The kernel builds are fetched next to the bundle (dist/browser/, copied there by
// tools/build-browser.ts) and compiled once; WebAssembly.Module and shared WebAssembly.Memory
// objects are then posted to the workers, which needs SharedArrayBuffer (cross-origin isolation:
// COOP same-origin + COEP require-corp, docs/browser.md).
import type { KernelWorker, WorkerChannel, WorkerInit } from "./platform.js";

export const PLATFORM = "browser";

/** The DOM's Worker and worker-global surfaces used here (the project compiles without DOM types). */
interface WebWorker {
  postMessage(message: unknown, transfer?: unknown[]): void;
  terminate(): void;
  addEventListener(type: "message" | "error", fn: (e: { data?: unknown; message?: string }) => void): void;
  removeEventListener(type: "message" | "error", fn: (e: { data?: unknown; message?: string }) => void): void;
}
interface Port {
  postMessage(message: unknown): void;
  onmessage: ((e: { data: unknown }) => void) | null;
  close(): void;
}
interface BrowserGlobals {
  MessageChannel: new () => { port1: Port; port2: Port };
  Worker: new (url: URL, options: { type: "module"; name?: string }) => WebWorker;
  navigator?: { hardwareConcurrency?: number };
  fetch(url: URL): Promise<{ ok: boolean; status: number; arrayBuffer(): Promise<ArrayBuffer> }>;
  crossOriginIsolated?: boolean;
  postMessage(message: unknown): void;
  addEventListener(type: "message", fn: (e: { data: unknown }) => void): void;
}
const g = globalThis as unknown as BrowserGlobals;

/** Kernel workers wait this long to come up before preparation fails (they load and compile nothing heavy). */
const START_TIMEOUT_MS = 30_000;
const KERNEL_FILES = ["kernels.wasm", "kernels-relaxed.wasm"];

const kernelBytes = new Map<string, Uint8Array>();
/** A started worker and our end of the channel it listens on. */
interface Started {
  readonly worker: WebWorker;
  readonly port: Port;
}
const started: Started[] = [];

/** navigator.hardwareConcurrency (logical cores), 1 where the browser does not say. */
export function hardwareConcurrency(): number {
  return Math.max(1, Math.floor(g.navigator?.hardwareConcurrency ?? 1));
}

/**
 * Fetch both kernel builds (once) and start `workers` kernel workers (beyond those already
 * started), waiting until each has loaded its script and listens for start data.
 */
export async function prepareKernelPlatform(workers: number): Promise<void> {
  // The kernels are built for shared memories (asconfig.json sharedMemory), one thread or many.
  if (typeof SharedArrayBuffer === "undefined") {
    throw new Error(
      "kernels: SharedArrayBuffer is unavailable: the page must be cross-origin isolated " +
        "(Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: require-corp; docs/browser.md); " +
        "the reference backend runs without it",
    );
  }
  await Promise.all(
    KERNEL_FILES.filter((f) => !kernelBytes.has(f)).map(async (f) => {
      const url = new URL(f, import.meta.url);
      const r = await g.fetch(url);
      if (!r.ok) throw new Error(`kernels: GET ${url} answered ${r.status} (is dist/browser/ built and served whole?)`);
      kernelBytes.set(f, new Uint8Array(await r.arrayBuffer()));
    }),
  );
  const more = workers - started.length;
  const fresh = await Promise.all(Array.from({ length: Math.max(0, more) }, () => startWorker()));
  started.push(...fresh);
}

function startWorker(): Promise<Started> {
  const w = new g.Worker(new URL("./kernel-worker.js", import.meta.url), { type: "module", name: "qwenvl-kernels" });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`kernels: a worker did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    // Start data and arena memories go through a MessageChannel. Seen in Chromium 156: messages
    // posted straight to the nested worker just before the pool blocked in Atomics.wait (the
    // start data; a port being transferred) did not arrive until the poster's event loop ran,
    // while messages on an already entangled port arrive during the wait. So the port is
    // transferred here, while this thread still runs its event loop, and the worker acknowledges
    // it before the pool may use it.
    let port: Port | null = null;
    const onMessage = (e: { data?: unknown }) => {
      const d = e.data as { listening?: boolean; entangled?: boolean } | undefined;
      if (d?.listening === true && !port) {
        const channel = new g.MessageChannel();
        port = channel.port1;
        w.postMessage({ port: channel.port2 }, [channel.port2]);
      } else if (d?.entangled === true && port) {
        done();
        resolve({ worker: w, port });
      }
    };
    const onError = (e: { message?: string }) => fail(new Error(`kernels: worker script failed: ${e.message ?? "unknown error"}`));
    const done = () => {
      clearTimeout(timer);
      w.removeEventListener("message", onMessage);
      w.removeEventListener("error", onError);
    };
    const fail = (err: Error) => {
      done();
      w.terminate();
      reject(err);
    };
    w.addEventListener("message", onMessage);
    w.addEventListener("error", onError);
  });
}

export function readKernelBytes(name: string): Uint8Array {
  const b = kernelBytes.get(name);
  if (!b) throw new Error(`kernels: ${name} is not loaded; in a browser, create the backend with createBackend() (it fetches the kernels first)`);
  return b;
}

export function spawnKernelWorker(init: WorkerInit): KernelWorker {
  const w = started.shift();
  if (!w) {
    throw new Error(
      `kernels: no started worker for thread ${init.tid}; in a browser the workers must be started ` +
        "before the pool (createBackend() does it for its thread count)",
    );
  }
  w.port.postMessage({ init });
  return {
    post: (message) => w.port.postMessage({ message }),
    terminate: () => {
      w.port.close();
      w.worker.terminate();
    },
  };
}

/** Worker side: announce that the script runs, then hand out the start data and later messages in order. */
export function kernelWorkerChannel(): Promise<WorkerChannel> {
  const queue: unknown[] = [];
  const waiting: ((m: unknown) => void)[] = [];
  return new Promise((resolve) => {
    g.addEventListener("message", (e) => {
      const port = (e.data as { port?: Port }).port;
      if (!port) return;
      port.onmessage = onPortMessage;
      g.postMessage({ entangled: true });
    });
    const onPortMessage = (e: { data: unknown }) => {
      const d = e.data as { init?: WorkerInit; message?: unknown };
      if (d.init) {
        resolve({
          init: d.init,
          receive: () => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r))),
        });
        return;
      }
      const next = waiting.shift();
      if (next) next(d.message);
      else queue.push(d.message);
    };
    g.postMessage({ listening: true });
  });
}
