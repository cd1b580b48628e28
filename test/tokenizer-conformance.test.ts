import { expect } from "chai";
import { runTokenizerConformance } from "../src/conformance/tokenizer.js";

describe("tokenizer conformance (test/fixtures/tokenizer-public.msgpack)", function () {
  this.timeout(60_000);
  it("matches every golden case of the reference tokenizer", async () => {
    const failures: string[] = [];
    const r = await runTokenizerConformance("test/fixtures/tokenizer-public.msgpack", (line) => {
      if (line.includes("FAIL")) failures.push(line);
    });
    expect(failures).to.deep.equal([]);
    expect(r.failed).to.equal(0);
    // 1 meta + 872 encode + 200 decode + 120 chat + 80 list_format cases
    expect(r.passed).to.equal(1273);
  });
});
