// Thread pool over shared WebAssembly memories.
//
// The calling thread is thread 0; threads 1..T−1 are workers (Node worker_threads or Web Workers,
// started through the platform layer: platform.node.ts / platform.browser.ts), each holding one kernel
// instance per arena (same shared memory, so everyone sees the same weights and scratch).
// One op = one "job": the caller writes (kernel, arena, arguments, number of work units) into a
// small shared control block, bumps a generation counter and notifies; every thread runs its slice
// [start, end) of the units (split() below: contiguous, in order, a pure function of the unit
// count and the thread count), decrements a pending counter; the last one notifies the caller,
// which waits after doing its own slice. That barrier costs one Atomics.notify/wait pair.
// Kernels take (…args, start, end, tid) — see assembly/index.ts.
//
// Under Node, workers never keep the process alive (platform.node.ts); dispose() stops them explicitly.
import type { Arena } from "./arena.js";
import type { KernelWorker } from "./platform.js";
import { spawnKernelWorker } from "./platform.node.js";

const GEN = 0, PENDING = 1, FN = 2, ARENA = 3, NARGS = 4, UNITS = 5, CMD = 6, ALIGN = 7, READY = 8, ERROR = 9;
/** Kernel slices the workers ran since the last job ended (they count, the caller collects). */
const SLICES = 10;
export const CTL_INTS = 16;
export const MAX_ARGS = 32;
export const CMD_RUN = 0, CMD_ARENA = 1, CMD_EXIT = 2;
/** Worker start-up (loading Node, instantiating the kernels) takes ~50 ms; allow for a busy machine. */
const STARTUP_TIMEOUT_MS = 30_000;
/**
 * The longest one kernel call may take before the pool gives up on its workers. The largest single
 * calls of the full model (prefill GEMMs, all-position logits) take seconds to tens of seconds here.
 */
const JOB_TIMEOUT_MS = 300_000;

let slicesInWorkers = 0;

/**
 * Kernel slices run by worker threads (not the calling thread) in this process or page so far:
 * the evidence that ops really ran in parallel (the browser page reports it).
 */
export function workerSliceCount(): number {
  return slicesInWorkers;
}

/** Thread t's share of `units` work units, in chunks of `align` units. */
export function split(units: number, threads: number, t: number, align: number): [number, number] {
  const chunks = Math.ceil(units / align);
  const c0 = Math.floor((t * chunks) / threads);
  const c1 = Math.floor(((t + 1) * chunks) / threads);
  return [Math.min(c0 * align, units), Math.min(c1 * align, units)];
}

export class ThreadPool {
  readonly threads: number;
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private readonly workers: KernelWorker[] = [];
  private readonly fnIds = new Map<string, number>();
  private disposed = false;

  constructor(
    threads: number,
    module: WebAssembly.Module,
    readonly fnNames: readonly string[],
    firstArena: Arena,
  ) {
    this.threads = Math.max(1, Math.floor(threads));
    fnNames.forEach((n, i) => this.fnIds.set(n, i));
    const sab = new SharedArrayBuffer(CTL_INTS * 4 + MAX_ARGS * 8);
    this.ctl = new Int32Array(sab, 0, CTL_INTS);
    this.args = new Float64Array(sab, CTL_INTS * 4, MAX_ARGS);
    for (let t = 1; t < this.threads; t++) {
      this.workers.push(spawnKernelWorker({ tid: t, threads: this.threads, module, control: sab, names: fnNames, memory: firstArena.memory }));
    }
    // Wait (blocking) until every worker has instantiated the kernels: ops are synchronous.
    // A worker that fails to start reports through ERROR (worker.ts); one that never starts at all
    // is caught by the deadline rather than hanging the process.
    const want = this.threads - 1;
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (let ready = Atomics.load(this.ctl, READY); ready < want; ready = Atomics.load(this.ctl, READY)) {
      if (this.ctl[ERROR] !== 0 || Date.now() > deadline) {
        for (const w of this.workers) w.terminate();
        throw new Error(
          `kernels: ${want - ready} of ${want} worker threads did not start` +
            (this.ctl[ERROR] !== 0 ? " (see stderr)" : ` within ${STARTUP_TIMEOUT_MS / 1000} s`),
        );
      }
      Atomics.wait(this.ctl, READY, ready, 100);
    }
  }

  /** Make a new arena known to every worker (each instantiates the kernels on its memory). */
  addArena(arena: Arena): void {
    if (this.workers.length === 0) return;
    for (const w of this.workers) w.post({ id: arena.id, memory: arena.memory });
    this.job(CMD_ARENA, 0, arena.id, [], 0, 1);
  }

  /**
   * Run kernel `fn` of `arena` over `units` work units split across the threads in chunks of
   * `align`. With parallel = false (tiny ops: the wake-up would cost more than the work) the
   * calling thread does everything; results are the same either way.
   */
  run(arena: Arena, fn: string, args: readonly number[], units: number, align = 1, parallel = true): void {
    if (units <= 0) return;
    const f = arena.k[fn];
    if (!f) throw new Error(`kernels: no export named ${fn}`);
    if (!parallel || this.workers.length === 0 || units <= align) {
      f(...args, 0, units, 0);
      return;
    }
    const id = this.fnIds.get(fn);
    if (id === undefined) throw new Error(`kernels: ${fn} is not in the pool's function table`);
    this.job(CMD_RUN, id, arena.id, args, units, align, () => {
      const [s, e] = split(units, this.threads, 0, align);
      if (e > s) f(...args, s, e, 0);
    });
  }

  private job(cmd: number, fn: number, arena: number, args: readonly number[], units: number, align: number, mine?: () => void): void {
    if (this.disposed) throw new Error("WasmBackend: used after dispose()");
    if (args.length > MAX_ARGS) throw new Error(`kernels: ${args.length} arguments, at most ${MAX_ARGS}`);
    const ctl = this.ctl;
    ctl[CMD] = cmd;
    ctl[FN] = fn;
    ctl[ARENA] = arena;
    ctl[NARGS] = args.length;
    ctl[UNITS] = units;
    ctl[ALIGN] = align;
    ctl[ERROR] = 0;
    for (let i = 0; i < args.length; i++) this.args[i] = args[i];
    Atomics.store(ctl, PENDING, this.workers.length);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    let err: unknown;
    try {
      mine?.();
    } catch (e) {
      err = e;
    }
    // Bounded wait: a worker that can no longer answer (killed, wedged) becomes an error naming
    // the kernel instead of a process that sleeps forever.
    const deadline = Date.now() + JOB_TIMEOUT_MS;
    for (let p = Atomics.load(ctl, PENDING); p !== 0; p = Atomics.load(ctl, PENDING)) {
      if (Atomics.wait(ctl, PENDING, p, 1000) === "timed-out" && Date.now() > deadline) {
        throw new Error(`kernels: ${p} worker thread(s) did not finish ${cmd === CMD_RUN ? this.fnNames[fn] : "a pool command"} within ${JOB_TIMEOUT_MS / 1000} s`);
      }
    }
    slicesInWorkers += Atomics.exchange(ctl, SLICES, 0);
    if (err) throw err;
    if (ctl[ERROR] !== 0) throw new Error(`kernels: a worker failed running ${this.fnNames[fn]} (see stderr)`);
  }

  /** Stop the workers. The pool cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // Ask the workers to leave their loop but do not wait for them: a caller blocked here on a
    // worker that can no longer answer would hang the process; terminate() ends any that remain.
    this.ctl[CMD] = CMD_EXIT;
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
    for (const w of this.workers) w.terminate();
  }
}

export const CTL = { GEN, PENDING, FN, ARENA, NARGS, UNITS, CMD, ALIGN, READY, ERROR, SLICES };
