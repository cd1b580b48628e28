// Opening the WebGPU backend in a test: skip where no adapter exists, except under CI, which
// installs a software adapter (.ci/run) so that a missing one there is a failure. Also what the
// WebGPU test files share: deterministic inputs and a record of the shaders a backend ran.
import { WebGpuBackend, type WebGpuBackendOptions } from "../src/ops/webgpu/backend.js";
import type { GpuContext } from "../src/ops/webgpu/context.js";

export { rand } from "../src/conformance/rand.js";

/** The backend's context (tests reach into it to record or force dispatches). */
export const ctxOf = (be: WebGpuBackend): GpuContext => (be as unknown as { ctx: GpuContext }).ctx;

/** Add the name of every shader `be` dispatches from now on to `ran`. */
export function recordDispatches(be: WebGpuBackend, ran: Set<string>): void {
  const ctx = ctxOf(be);
  const dispatch = ctx.dispatch.bind(ctx);
  ctx.dispatch = (name, ...rest) => {
    ran.add(name);
    dispatch(name, ...rest);
  };
}

export async function acquire(ctx: Mocha.Context, options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  try {
    return await WebGpuBackend.create(options);
  } catch (e) {
    const why = (e as Error).message;
    // CI installs a software adapter (.ci/run): there a missing adapter is a failure, not a skip.
    if (process.env.CI === "true") throw new Error(`webgpu: no adapter under CI: ${why}`);
    console.log(`    (skipping the webgpu tests: ${why})`);
    ctx.skip();
  }
}

