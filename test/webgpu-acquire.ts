// Opening the WebGPU backend in a test: skip where no adapter exists, except under CI, which
// installs a software adapter (.ci/run) so that a missing one there is a failure.
import { WebGpuBackend, type WebGpuBackendOptions } from "../src/ops/webgpu/backend.js";

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

