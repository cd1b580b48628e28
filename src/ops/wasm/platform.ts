// What the kernel thread pool needs from its platform (Node: platform.node.ts, browsers:
// platform.browser.ts). Code imports the functions from "./platform.node.js"; the browser bundle
// redirects that import to the twin (tools/build-browser.ts), so nothing here branches at run time.

/** Start data of one kernel worker (pool.ts builds it, worker.ts consumes it). */
export interface WorkerInit {
  readonly tid: number;
  readonly threads: number;
  readonly module: WebAssembly.Module;
  /** Control block and argument slots (pool.ts CTL_INTS, MAX_ARGS). */
  readonly control: SharedArrayBuffer;
  readonly names: readonly string[];
  /** The first arena's memory; later ones arrive as messages (ThreadPool.addArena). */
  readonly memory: WebAssembly.Memory;
}

/** The calling thread's handle on one worker. */
export interface KernelWorker {
  /** Deliver a message the worker reads with WorkerChannel.receive (arena memories). */
  post(message: unknown): void;
  terminate(): void;
}

/** The worker's side: its start data and the next message from the pool. */
export interface WorkerChannel {
  readonly init: WorkerInit;
  /** Next message: synchronously under Node (receiveMessageOnPort), a promise in browsers. */
  receive(): unknown | Promise<unknown>;
}
