// The conformance runner: every golden case in a directory, against that directory's checkpoint.
//
//   qwenvl conformance --cases DIR [--images DIR] [--backend NAME]
//   qwenvl conformance --tokenizer FILE.msgpack
//
// Prints each case with one line per compared tensor (relative L2, max abs) and ends with
// `conformance: N passed, M failed`. A case whose component is missing counts as failed
// ("not implemented").
import { existsSync, readdirSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { Backend } from "../ops/backend.js";
import { runLlmCase } from "./llm.js";
import { runVisionCase } from "./vision.js";
import { runTokenizerConformance } from "./tokenizer.js";

export interface RunSummary {
  readonly passed: number;
  readonly failed: number;
}

type CaseRunner = (
  file: string,
  opts: { checkpointDir: string; imagesDir: string; backend: Backend; log: (line: string) => void },
) => Promise<{ ok: boolean }>;

/** Which runner handles a case file, by its name prefix (the format names them so). */
const RUNNERS: ReadonlyArray<[prefix: string, run: CaseRunner]> = [
  ["vision-", runVisionCase],
  ["llm-", runLlmCase],
];

export async function runCaseDirectory(
  casesDir: string,
  opts: { imagesDir?: string; backend: Backend; log: (line: string) => void },
): Promise<RunSummary> {
  const dir = resolve(casesDir);
  if (!existsSync(dir)) throw new Error(`conformance: cases directory ${dir} does not exist`);
  const checkpointDir = join(dir, "checkpoint");
  if (!existsSync(checkpointDir)) throw new Error(`conformance: ${dir} has no checkpoint/ directory`);
  // Image paths in the cases are relative to ../images (the conformance format).
  const imagesDir = resolve(opts.imagesDir ?? join(dir, "..", "images"));
  // Every case file counts: one whose kind has no runner yet fails as "not implemented".
  const files = readdirSync(dir).filter((f) => f.endsWith(".msgpack")).sort();
  if (files.length === 0) throw new Error(`conformance: no *.msgpack cases in ${dir}`);

  let passed = 0;
  let failed = 0;
  for (const f of files) {
    const run = RUNNERS.find(([p]) => f.startsWith(p))?.[1];
    const t0 = performance.now();
    opts.log(`case ${f}`);
    let ok = false;
    try {
      if (!run) throw new Error(`not implemented: no runner for this kind of case (known: ${RUNNERS.map(([p]) => p + "*").join(", ")})`);
      ok = (await run(join(dir, f), { checkpointDir, imagesDir, backend: opts.backend, log: opts.log })).ok;
    } catch (e) {
      opts.log(`  FAIL ${(e as Error).message}`);
    }
    const secs = ((performance.now() - t0) / 1000).toFixed(2);
    opts.log(`  => ${ok ? "PASS" : "FAIL"} ${basename(f)} (${secs} s)`);
    if (ok) passed++;
    else failed++;
  }
  return { passed, failed };
}

export async function runTokenizerFile(file: string, log: (line: string) => void): Promise<RunSummary> {
  if (!existsSync(file)) throw new Error(`conformance: tokenizer golden file ${file} does not exist`);
  return runTokenizerConformance(file, log);
}
