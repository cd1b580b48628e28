// Headless Debian Chromium for the page tests, driven by playwright-core (which downloads no
// browser). CI installs the package (.ci/run) and a missing one fails there; elsewhere the suite
// says why it did not run and skips.
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * The flags the machine's probe runs Chromium with: without the background-networking ones it
 * opens connections that this closed network refuses.
 */
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Call first in a suite's before(): skips it (or throws under CI) when Chromium is missing. */
export function requireChromium(ctx: Mocha.Context): void {
  if (existsSync(CHROMIUM)) return;
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium package`);
  console.log(`    (skipped: no ${CHROMIUM}; apt-get install chromium)`);
  ctx.skip();
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
}

/**
 * The same, with WebGPU on Chromium's own software adapter (SwiftShader, shipped with Debian's
 * chromium: libvk_swiftshader.so). `--disable-gpu` would turn WebGPU off, so it is not passed.
 */
export function launchChromiumWebGpu(): Promise<Browser> {
  const args = FLAGS.filter((f) => f !== "--disable-gpu").concat(["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"]);
  return chromium.launch({ executablePath: CHROMIUM, args });
}
