// Starts `qwenvl serve` as a child process on a free loopback port, for the server and page tests.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CLI = ROOT + "dist/src/cli.js";

export interface Served {
  url: string;
  proc: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Starts `qwenvl serve --port 0 ...` (or another listening command) and resolves with its URL once it listens. */
export function serve(args: string[], command: "serve" | "web" = "serve"): Promise<Served> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, command, "--port", "0", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 60_000);
    proc.stderr!.on("data", (d) => (err += d));
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          proc,
          stderr: () => err,
          stop: () => new Promise<void>((r) => {
            if (proc.exitCode !== null) return r();
            proc.once("exit", () => r());
            proc.kill("SIGTERM");
          }),
        });
      }
    });
    proc.once("exit", (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

