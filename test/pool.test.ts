// The worker pool's start-up handshake: a job posted the moment the workers report ready (here,
// dispose()'s exit command) must reach them. A worker that read the job generation after
// announcing readiness used to miss it and the caller waited forever.
import { hostData } from "../src/ops/host.js";
import { expect } from "chai";
import { WasmBackend } from "../src/ops/wasm/backend.js";
import { Tensor } from "../src/ops/backend.js";

describe("wasm thread pool", function () {
  this.timeout(60_000);

  it("runs a job and disposes right after start-up, repeatedly", () => {
    for (let i = 0; i < 20; i++) {
      const be = new WasmBackend({ threads: 3 });
      if (i % 2) {
        const x = new Tensor([2, 4096], new Float32Array(8192).fill(1));
        expect(hostData(be.add(x, x))[8191]).to.equal(2);
      }
      be.dispose();
    }
  });

  it("refuses work after dispose()", () => {
    const be = new WasmBackend({ threads: 2 });
    be.dispose();
    const x = new Tensor([64, 1024], new Float32Array(64 * 1024));
    expect(() => be.add(x, x)).to.throw(/after dispose/);
  });
});
