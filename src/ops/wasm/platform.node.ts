// Platform layer of the kernel thread pool, Node side: worker_threads, the kernel builds read from
// the package's build/ directory, os.availableParallelism(). Its browser twin is platform.browser.ts
// (same exports); the browser bundle (tools/build-browser.ts) swaps every `*.node.js` import for
// its `*.browser.ts` twin, so pool.ts, worker.ts and module.ts are the same code on both.
import { availableParallelism } from "node:os";
import { readFileSync } from "node:fs";
import { MessageChannel, Worker, receiveMessageOnPort, workerData, type MessagePort } from "node:worker_threads";
import { packageFile } from "../../package-files.js";
import type { KernelWorker, WorkerChannel, WorkerInit } from "./platform.js";

export const PLATFORM = "node";

/** Threads the machine offers (the default thread count of the pool). */
export function hardwareConcurrency(): number {
  return availableParallelism();
}

/** Nothing to prepare under Node: workers start while the caller blocks, files are read on demand. */
export async function prepareKernelPlatform(_workers: number): Promise<void> {}

/** Bytes of one kernel build (build/kernels.wasm or build/kernels-relaxed.wasm). */
export function readKernelBytes(name: string): Uint8Array {
  try {
    return readFileSync(packageFile(`build/${name}`));
  } catch (e) {
    throw new Error(`kernels: cannot read build/${name} (run \`npm run build:wasm\`): ${(e as Error).message}`);
  }
}

/**
 * Start kernel worker `init.tid`. Workers and their ports are unref()'d: blocked in Atomics.wait,
 * they never keep the process alive.
 */
export function spawnKernelWorker(init: WorkerInit): KernelWorker {
  const { port1, port2 } = new MessageChannel();
  const w = new Worker(new URL("./worker.js", import.meta.url), { workerData: { ...init, port: port2 }, transferList: [port2] });
  w.unref();
  port1.unref();
  return {
    post: (message) => port1.postMessage(message),
    terminate: () => {
      void w.terminate();
      port1.close();
    },
  };
}

/** Worker side: the start data, and later messages read synchronously off the port. */
export async function kernelWorkerChannel(): Promise<WorkerChannel> {
  const data = workerData as WorkerInit & { port: MessagePort };
  data.port.unref();
  return {
    init: data,
    receive: () => {
      // The caller posts before it bumps the generation; the message may take a moment to land.
      for (;;) {
        const m = receiveMessageOnPort(data.port);
        if (m) return m.message;
      }
    },
  };
}
