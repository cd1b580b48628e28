// Files shipped inside this package (the vocabulary, the kernel builds, the demo image, tool
// configs), found the same way whether the code runs from src/ or from the compiled dist/src/.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of `relPath` under the nearest directory above this module that holds package.json and it. */
export function packageFile(relPath: string): string {
  // Computed per call, not at import: the browser bundle imports this module without a file system.
  const HERE = dirname(fileURLToPath(import.meta.url));
  for (let dir = HERE; ; dir = dirname(dir)) {
    const candidate = join(dir, relPath);
    if (existsSync(join(dir, "package.json")) && existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new Error(`qwenvl: no ${relPath} next to a package.json above ${HERE} (is the package built and complete?)`);
}
