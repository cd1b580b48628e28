// Load a whole checkpoint the way the model does and report the cost.
//
//   npx node dist/tools/load-checkpoint.js --dir DIR [--drop]
//
// Opens DIR (config.json + safetensors), then reads every parameter through VarBuilder:
// linears with vb.linear (GPTQ or dense, f16 kept as 16-bit), the token embedding in its stored
// precision (vb.half), everything else as f32. By default every weight is kept until the end,
// as a loaded model would; --drop releases each one after reading (I/O cost alone).
// Prints tensor count, bytes, seconds, GB/s and peak RSS, and fails if any checkpoint tensor
// was never read.
import { VarBuilder } from "../src/io/var-builder.js";
import { modelLayout } from "./make-checkpoint.js";

function main(argv: string[]): void {
  const i = argv.indexOf("--dir");
  if (i < 0 || i + 1 >= argv.length) throw new Error("usage: load-checkpoint --dir DIR [--drop]");
  const dir = argv[i + 1];
  const keepAll = !argv.includes("--drop");
  const t0 = performance.now();
  let lastReport = t0;
  const { vb, config, checkpoint } = VarBuilder.open(dir, {
    onProgress: (done, total) => {
      const now = performance.now();
      if (now - lastReport > 2000) {
        lastReport = now;
        process.stderr.write(`${((100 * done) / total).toFixed(0)}% (${(done / 1e9).toFixed(2)} / ${(total / 1e9).toFixed(2)} GB)\n`);
      }
    },
  });
  const tOpen = performance.now();
  const kept: unknown[] = [];
  for (const m of modelLayout(config)) {
    let w: unknown;
    if (m.kind === "linear") {
      w = vb.linear(m.name, { inFeatures: m.inFeatures, outFeatures: m.outFeatures, bias: m.bias, transposed: m.transposed });
    } else if (m.name === "transformer.wte.weight") {
      w = vb.half(m.name, m.shape);
    } else {
      w = vb.f32(m.name, m.shape);
    }
    if (keepAll) kept.push(w);
  }
  const secs = (performance.now() - t0) / 1000;
  const unused = vb.unused();
  if (unused.length > 0) throw new Error(`${unused.length} tensors never read, e.g. ${unused.slice(0, 3).join(", ")}`);
  const bytes = checkpoint.bytesRead;
  console.log(
    JSON.stringify({
      dir,
      tensors: vb.used().size,
      bytes,
      openSeconds: +((tOpen - t0) / 1000).toFixed(3),
      seconds: +secs.toFixed(2),
      gbPerSecond: +(bytes / secs / 1e9).toFixed(2),
      peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      keptAll: keepAll,
      keptObjects: kept.length,
    }),
  );
  checkpoint.close();
}

try {
  main(process.argv.slice(2));
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
