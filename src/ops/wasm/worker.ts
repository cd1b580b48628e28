// Worker side of the thread pool (pool.ts): wait for a job, run this thread's slice, count down.
// The same code runs as a Node worker_thread and as a Web Worker; the platform layer
// (platform.node.ts / platform.browser.ts) supplies the start data and the arena messages.
import { instantiate, type KernelExports } from "./module.js";
import { kernelWorkerChannel } from "./platform.node.js";
import { CTL, CTL_INTS, MAX_ARGS, CMD_ARENA, CMD_EXIT, split } from "./pool.js";

const channel = await kernelWorkerChannel();
const init = channel.init;
const ctl = new Int32Array(init.control, 0, CTL_INTS);
const argv = new Float64Array(init.control, CTL_INTS * 4, MAX_ARGS);
let first: KernelExports;
try {
  first = instantiate(init.module, init.memory);
} catch (e) {
  console.error(`kernel worker ${init.tid}: cannot instantiate the kernels:`, e);
  Atomics.store(ctl, CTL.ERROR, 1);
  Atomics.notify(ctl, CTL.READY);
  throw e;
}
const instances: KernelExports[] = [first];

// Read the generation BEFORE announcing readiness: the caller may post its first job the moment
// READY is complete, and a generation read after that would already include the job and wait
// past it forever.
let gen = Atomics.load(ctl, CTL.GEN);
Atomics.add(ctl, CTL.READY, 1);
Atomics.notify(ctl, CTL.READY);

for (;;) {
  Atomics.wait(ctl, CTL.GEN, gen);
  gen = Atomics.load(ctl, CTL.GEN);
  const cmd = ctl[CTL.CMD];
  if (cmd === CMD_EXIT) {
    Atomics.sub(ctl, CTL.PENDING, 1);
    Atomics.notify(ctl, CTL.PENDING);
    break;
  }
  try {
    if (cmd === CMD_ARENA) {
      // The caller posted the memory before bumping the generation. A browser delivers it only
      // through the event loop, hence the await (a Node port is read synchronously).
      const { id, memory } = (await channel.receive()) as { id: number; memory: WebAssembly.Memory };
      instances[id] = instantiate(init.module, memory);
    } else {
      const [s, e] = split(ctl[CTL.UNITS], init.threads, init.tid, ctl[CTL.ALIGN]);
      if (e > s) {
        const args = Array.from(argv.subarray(0, ctl[CTL.NARGS]));
        instances[ctl[CTL.ARENA]][init.names[ctl[CTL.FN]]](...args, s, e, init.tid);
        Atomics.add(ctl, CTL.SLICES, 1);
      }
    }
  } catch (e) {
    console.error(`kernel worker ${init.tid}:`, e);
    Atomics.store(ctl, CTL.ERROR, 1);
  }
  if (Atomics.sub(ctl, CTL.PENDING, 1) === 1) Atomics.notify(ctl, CTL.PENDING);
}
