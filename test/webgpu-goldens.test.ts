// The WebGPU backend on the tiny-a conformance goldens (the same cases the WASM backend passes).
import { expect } from "chai";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCaseDirectory } from "../src/conformance/runner.js";
import { acquire } from "./webgpu-acquire.js";

const TINY = fileURLToPath(new URL("../../test/fixtures/tiny-a", import.meta.url));
const IMAGES = fileURLToPath(new URL("../../test/fixtures/images", import.meta.url));

// On lavapipe (2 CPU cores) a tiny-a vision case takes ~10 s, the full directory ~90 s: the suite
// runs one vision case and both text-only and image prompts of the decoder (every op path the
// graph uses); QWENVL_WEBGPU_CONFORMANCE=all runs all nine.
const CASES = ["llm-text.msgpack", "llm-image.msgpack", "vision-radar.msgpack"];

describe("webgpu backend on the tiny-a conformance goldens", function () {
  this.timeout(300_000);
  const all = process.env.QWENVL_WEBGPU_CONFORMANCE === "all";
  it(`passes ${all ? "every tiny-a case" : CASES.join(", ")} (rel L2 < 1e-4)`, async function () {
    const backend = await acquire(this);
    let dir = TINY;
    if (!all) {
      dir = mkdtempSync(join(tmpdir(), "qwenvl-webgpu-conf-"));
      symlinkSync(join(TINY, "checkpoint"), join(dir, "checkpoint"));
      for (const c of CASES) symlinkSync(join(TINY, c), join(dir, c));
    }
    const lines: string[] = [];
    try {
      const r = await runCaseDirectory(dir, { backend, log: (l) => lines.push(l), imagesDir: IMAGES });
      expect(r.failed, lines.filter((l) => /FAIL/.test(l)).join("\n")).to.equal(0);
      expect(r.passed).to.equal(all ? 9 : CASES.length);
    } finally {
      await backend.dispose();
      if (dir !== TINY) rmSync(dir, { recursive: true, force: true });
    }
  });
});
