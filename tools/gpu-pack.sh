#!/usr/bin/env bash
# Packs what a machine with a GPU but no Node and no network needs to run this package on
# WebGPU: a stripped Node 24 binary (the `node` devDependency), the `webgpu` package's dawn.node
# and the built package (dist/, build/, assets/, the demo images, tools/configs/ and the runtime
# node_modules the model code imports, the WGSL shader sources), each xz-compressed, plus tools/gpu-device-run.sh.
#
#   tools/gpu-pack.sh OUTDIR        (after `npm ci`, `npm run build`, and `webgpu` installed)
#
# The three archives stay under 64 MiB together (Node ~27 MB, dawn.node ~5 MB, package ~6 MB).
set -euo pipefail
out=${1:?usage: tools/gpu-pack.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
node_bin=$(readlink -f node_modules/node/bin/node)
dawn=node_modules/webgpu/dist/linux-x64/dawn.node
[ -x "$node_bin" ] || { echo "gpu-pack: no $node_bin (run npm ci)" >&2; exit 1; }
[ -f "$dawn" ] || { echo "gpu-pack: no $dawn (npm install webgpu)" >&2; exit 1; }
[ -d dist/src ] || { echo "gpu-pack: no dist/ (npx tsc -p tsconfig.json)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Node: the binary carries debug info (~18 MB) that nothing here needs; reuse an archive made
# from the same binary (xz -9e takes a minute).
stamp="$(sha256sum "$node_bin" | cut -c1-16)"
if [ "$(cat "$out/node.xz.src" 2>/dev/null)" != "$stamp" ]; then
  strip -o "$tmp/node" "$node_bin"
  xz -9e -T0 -c "$tmp/node" >"$out/node.xz"
  echo "$stamp" >"$out/node.xz.src"
fi
xz -9 -T0 -c "$dawn" >"$out/dawn.node.xz"
# The package: dawn.node travels on its own (it is most of node_modules/webgpu).
mods=(msgpackr tiktoken @jsquash/jpeg opentype.js)
[ -d node_modules/msgpackr-extract ] && mods+=(msgpackr-extract)
# chai and tools/device-mocha.mjs: the WebGPU test files run there too (docs/webgpu-h200.md).
paths=(package.json dist build assets tools/configs tools/gpu-probe.mjs tools/device-mocha.mjs test/fixtures/images node_modules/chai
  node_modules/webgpu/index.js node_modules/webgpu/package.json)
for m in "${mods[@]}"; do paths+=("node_modules/$m"); done
# The WebGPU backend reads its WGSL sources from src/ at run time (packageFile).
[ -d src/ops/webgpu/wgsl ] && paths+=(src/ops/webgpu/wgsl)
# tiktoken's own encoders/ (17 MB) are OpenAI vocabularies; this package reads assets/qwen.tiktoken.
tar -cf - --exclude='node_modules/tiktoken/encoders' --exclude='*.map' "${paths[@]}" | xz -6 -T0 >"$out/app.tar.xz"
cp tools/gpu-device-run.sh "$out/"
du -ch "$out"/*.xz | tail -n 1
