// The whole golden directory through the conformance runner, one test body per backend
// (the reference backend runs the same cases in vision.test.ts and llm.test.ts), and the CLI's
// contract: per-tensor lines, the closing `conformance: N passed, M failed` line, the exit code.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pack, unpack } from "msgpackr";
import { fileURLToPath } from "node:url";
import type { Backend } from "../src/ops/backend.js";
import { WasmBackend } from "../src/ops/wasm/backend.js";
import { runCaseDirectory } from "../src/conformance/runner.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TINY = ROOT + "test/fixtures/tiny-a";
const CLI = ROOT + "dist/src/cli.js";

const BACKENDS: Array<[string, () => Backend]> = [
  ["wasm, relaxed SIMD when available, 2 threads", () => new WasmBackend({ threads: 2 })],
  ["wasm, plain SIMD128 build, 1 thread", () => new WasmBackend({ threads: 1, simd: "simd128" })],
  [
    "wasm, plain SIMD128 build with the i8x3 GPTQ kernels (emulated i8 dot), 2 threads",
    () => new WasmBackend({ threads: 2, simd: "simd128", decodeQ4: "i8x3", prefillQ4: "i8x3" }),
  ],
];

describe("conformance on every backend", function () {
  this.timeout(180_000);

  for (const [label, make] of BACKENDS) {
    it(`passes every tiny-a case on ${label}`, async () => {
      const backend = make();
      const lines: string[] = [];
      try {
        const r = await runCaseDirectory(TINY, { backend, log: (l) => lines.push(l) });
        expect(r.failed, lines.filter((l) => /FAIL/.test(l)).join("\n")).to.equal(0);
        expect(r.passed).to.equal(9); // 6 vision + 3 llm cases
      } finally {
        (backend as WasmBackend).dispose();
      }
    });
  }
});

describe("qwenvl conformance (command line)", function () {
  this.timeout(180_000);
  // A bounded wait: a command that hangs fails this test instead of stalling the suite.
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, "conformance", ...args], { encoding: "utf8", timeout: 120_000 });

  it("prints per-tensor errors and exits 0 when every case passes", () => {
    const r = run("--cases", TINY, "--backend", "wasm");
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/ok {3}vit\.block\.1 +rel_l2=\S+ +max_abs=/);
    expect(r.stdout).to.match(/ok {3}prefill_logits +rel_l2=/);
    expect(r.stdout.trimEnd().split("\n").at(-1)).to.equal("conformance: 9 passed, 0 failed");
  });

  it("runs the tokenizer goldens", () => {
    const r = run("--tokenizer", ROOT + "test/fixtures/tokenizer-public.msgpack");
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.trimEnd().split("\n").at(-1)).to.equal("conformance: 1273 passed, 0 failed");
  });

  it("fails with a clear message on a directory without cases", () => {
    const r = run("--cases", ROOT + "test/fixtures/images");
    expect(r.status).to.not.equal(0);
    expect(r.stderr).to.match(/has no checkpoint\/ directory/);
  });

  it("counts a case of a kind without a runner as failed: not implemented", () => {
    const dir = mkdtempSync(join(tmpdir(), "qwenvl-conf-"));
    try {
      symlinkSync(TINY + "/checkpoint", join(dir, "checkpoint"));
      writeFileSync(join(dir, "audio-clip.msgpack"), pack({ meta: { kind: "audio" }, tensors: {} }));
      const r = run("--cases", dir, "--backend", "reference");
      expect(r.status).to.equal(1);
      expect(r.stdout).to.match(/FAIL not implemented/);
      expect(r.stdout.trimEnd().split("\n").at(-1)).to.equal("conformance: 0 passed, 1 failed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("counts a case whose golden disagrees as failed and exits 1", () => {
    // A copy of one vision case with image_embeds perturbed by 1e-3 relative: above tolerance.
    const dir = mkdtempSync(join(tmpdir(), "qwenvl-conf-"));
    try {
      symlinkSync(TINY + "/checkpoint", join(dir, "checkpoint"));
      const c = unpack(readFileSync(TINY + "/vision-radar.msgpack")) as {
        tensors: Record<string, { data: Uint8Array }>;
      };
      const raw = c.tensors.image_embeds.data;
      const f = new Float32Array(Uint8Array.from(raw).buffer);
      for (let i = 0; i < f.length; i++) f[i] *= 1 + 1e-3 * (i % 2 ? 1 : -1);
      c.tensors.image_embeds.data = new Uint8Array(f.buffer);
      writeFileSync(join(dir, "vision-radar.msgpack"), pack(c));
      const r = run("--cases", dir, "--images", ROOT + "test/fixtures/images", "--backend", "wasm");
      expect(r.status).to.equal(1);
      expect(r.stdout).to.match(/FAIL image_embeds +rel_l2=(9\.99\d*e-4|1\.00\d*e-3)/);
      expect(r.stdout.trimEnd().split("\n").at(-1)).to.equal("conformance: 0 passed, 1 failed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
