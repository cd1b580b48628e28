#!/usr/bin/env bash
# Runs a JS entry point of this package under Node on a Linux machine that has an NVIDIA GPU
# and its driver but no Node, no Vulkan loader and no network. Expects the folder this script
# sits in to hold what tools/gpu-pack.sh wrote (node.xz, dawn.node.xz, app.tar.xz) and, beside
# it, a folder .gl/ of Vulkan/GL loader .deb files (libvulkan1 and friends, `apt-get download`).
#
#   bash PACKDIR/gpu-device-run.sh ENTRY.js [ARGS...]     (ENTRY relative to the package root)
#
# Unpacks into $QWENVL_RUN (default /tmp/qwenvl); a second call reuses what is there.
set -euo pipefail
pack=$(cd "$(dirname "$0")" && pwd)
run=${QWENVL_RUN:-/tmp/qwenvl}
unxz_to() { # FILE.xz DEST: the machine may lack xz; Python's lzma module reads the same format
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
# Vulkan loader: only if the machine has none (dpkg -x into / is what the loaders need to be found).
if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
  gl=${QWENVL_GL:-$(pwd)/.gl}
  for f in "$gl"/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
# The driver's ICD manifest lives under the read-only driver mount, not where the loader looks.
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia* >/dev/null 2>&1 && ! ls /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
  export VK_DRIVER_FILES=$icd
fi
mkdir -p "$run/bin" "$run/app"
if [ ! -x "$run/bin/node" ]; then unxz_to "$pack/node.xz" "$run/bin/node.tmp"; chmod +x "$run/bin/node.tmp"; mv "$run/bin/node.tmp" "$run/bin/node"; fi
if [ ! -f "$run/app/package.json" ]; then
  unxz_to "$pack/app.tar.xz" "$run/app.tar"; tar -xf "$run/app.tar" -C "$run/app"; rm "$run/app.tar"
fi
dn="$run/app/node_modules/webgpu/dist/linux-x64/dawn.node"
if [ ! -f "$dn" ]; then mkdir -p "$(dirname "$dn")"; unxz_to "$pack/dawn.node.xz" "$dn"; fi
export PATH="$run/bin:$PATH"
cd "$run/app"
exec node "$@"
