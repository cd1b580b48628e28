// Builds the browser bundle, dist/browser/ (run by `npm run build` after tsc and the kernels):
//   qwenvl.js         the package API as one ES module (entry src/browser/index.ts)
//   kernel-worker.js  the kernel pool's worker (src/ops/wasm/worker.ts)
//   kernels.wasm, kernels-relaxed.wasm, tiktoken_bg.wasm, mozjpeg_dec.wasm   fetched at run time next to the bundle
//   wgsl/*.wgsl       the WebGPU backend's shaders, fetched the same way
// esbuild (a devDependency) does the bundling: the sources are ES modules importing npm packages
// (tiktoken, @jsquash/jpeg, msgpackr), which a browser cannot resolve by itself, and esbuild
// resolves them and strips the TypeScript in one fast pass without a second type checker.
// Two rewrites make the same sources run in a browser:
//   - every import of a `*.node.js` module becomes its `*.browser.ts` twin (the platform layers:
//     src/ops/wasm/platform.*.ts, src/tokenizer/bpe-core.*.ts);
//   - node:fs, node:path, node:url, node:os resolve to src/browser/node-builtins.ts, whose functions
//     throw a clear error: only Node-only entry points (a directory path, a file name) call them.
// `process.env` (kernel choices by environment variable, autotune.ts) becomes {}: a page has no
// environment; the options or the timed probe decide.
import { build, type Plugin } from "esbuild";
import { copyFileSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const OUT = join(ROOT, "dist/browser");
const NODE_BUILTINS = ["fs", "path", "url", "os"];

const twins: Plugin = {
  name: "qwenvl-platform-twins",
  setup(b) {
    b.onResolve({ filter: /\.node\.js$/ }, (args) => {
      const twin = join(args.resolveDir, args.path.replace(/\.node\.js$/, ".browser.ts"));
      if (!existsSync(twin)) return { errors: [{ text: `${args.path} (imported by ${args.importer}) has no browser twin ${twin}` }] };
      return { path: twin };
    });
    // Dynamic imports of Node modules sit behind a runtime check for Node (src/image/inflate.ts,
    // jpeg.ts) and never run in a browser: they stay as they are.
    b.onResolve({ filter: /^node:/ }, (args) => (args.kind === "dynamic-import" ? { path: args.path, external: true } : undefined));
    // The `webgpu` package is Dawn for Node; a browser has navigator.gpu (src/ops/webgpu/device.ts
    // imports the package only where that is missing).
    b.onResolve({ filter: /^webgpu$/ }, (args) => (args.kind === "dynamic-import" ? { path: args.path, external: true } : undefined));
    const builtins = new RegExp(`^(node:)?(${NODE_BUILTINS.join("|")})$`);
    b.onResolve({ filter: builtins }, () => ({ path: join(ROOT, "src/browser/node-builtins.ts") }));
  },
};

await build({
  absWorkingDir: ROOT,
  entryPoints: { qwenvl: "src/browser/index.ts", "kernel-worker": "src/ops/wasm/worker.ts" },
  outdir: OUT,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  sourcemap: true,
  define: { "process.env": "{}" },
  plugins: [twins],
  logLevel: "warning",
});

const require = createRequire(import.meta.url);
mkdirSync(OUT, { recursive: true });
const assets: [string, string][] = [
  [join(ROOT, "build/kernels.wasm"), "kernels.wasm"],
  [join(ROOT, "build/kernels-relaxed.wasm"), "kernels-relaxed.wasm"],
  [join(dirname(require.resolve("tiktoken/lite")), "tiktoken_bg.wasm"), "tiktoken_bg.wasm"],
  [join(dirname(require.resolve("@jsquash/jpeg/package.json")), "codec/dec/mozjpeg_dec.wasm"), "mozjpeg_dec.wasm"],
];
for (const [from, to] of assets) copyFileSync(from, join(OUT, to));
// The WebGPU backend fetches its WGSL sources relative to the bundle (src/ops/webgpu/device.ts
// loadShaders: ./wgsl/NAME.wgsl next to qwenvl.js).
const WGSL = join(ROOT, "src/ops/webgpu/wgsl");
mkdirSync(join(OUT, "wgsl"), { recursive: true });
for (const f of readdirSync(WGSL)) if (f.endsWith(".wgsl")) copyFileSync(join(WGSL, f), join(OUT, "wgsl", f));
