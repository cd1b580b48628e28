// The WebGPU test files (compiled, dist/test/*.test.js) on a machine that has a GPU but not the
// dev dependencies: a minimal stand-in for mocha's describe / it / before / after / this.skip,
// run in file order. tools/gpu-pack.sh packs it with chai; docs/webgpu-h200.md shows the call.
//
//   node tools/device-mocha.mjs dist/test/webgpu.test.js dist/test/webgpu-mma.test.js ...
//
// Prints one line per test and exits 1 if any failed. Hooks and tests run with a `this` that has
// timeout() (ignored) and skip().
const root = { name: "", tests: [], suites: [], before: [], after: [] };
let current = root;
globalThis.describe = (name, fn) => {
  const suite = { name, tests: [], suites: [], before: [], after: [] };
  current.suites.push(suite);
  const parent = current;
  current = suite;
  fn.call({ timeout() {} });
  current = parent;
};
globalThis.it = (name, fn) => current.tests.push({ name, fn });
globalThis.before = (fn) => current.before.push(fn);
globalThis.after = (fn) => current.after.push(fn);

class Skip extends Error {}
const context = () => ({ timeout() {}, skip() { throw new Skip(); } });
let passed = 0, failed = 0, skipped = 0;

function count(suite) {
  return suite.tests.length + suite.suites.reduce((n, s) => n + count(s), 0);
}

async function run(suite, path) {
  const here = path ? `${path} › ${suite.name}` : suite.name;
  try {
    for (const hook of suite.before) await hook.call(context());
  } catch (e) {
    if (!(e instanceof Skip)) throw e;
    skipped += count(suite);
    console.log(`  skip ${here}`);
    return;
  }
  for (const test of suite.tests) {
    try {
      await test.fn.call(context());
      passed++;
      console.log(`  ok   ${here} › ${test.name}`);
    } catch (e) {
      if (e instanceof Skip) {
        skipped++;
        continue;
      }
      failed++;
      console.log(`  FAIL ${here} › ${test.name}: ${e.message}`);
    }
  }
  for (const child of suite.suites) await run(child, here);
  for (const hook of suite.after) await hook.call(context());
}

for (const file of process.argv.slice(2)) await import(new URL(file, `file://${process.cwd()}/`).href);
await run(root, "");
console.log(`${passed} passing, ${failed} failing, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
