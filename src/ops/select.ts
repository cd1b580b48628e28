// Choosing a backend by name: the CLI, the demo and the conformance runner all go through here.
import type { Backend } from "./backend.js";
import { ReferenceBackend } from "../../reference/backend.js";

export const BACKEND_NAMES = ["reference"] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendChoice {
  readonly name: string;
  readonly threads?: number;
}

export async function createBackend(choice: BackendChoice): Promise<Backend> {
  switch (choice.name) {
    case "reference":
      return new ReferenceBackend();
    default:
      throw new Error(`unknown backend ${JSON.stringify(choice.name)}; choose one of: ${BACKEND_NAMES.join(", ")}`);
  }
}

/** Release worker threads and memories, for backends that hold them. */
export async function disposeBackend(b: Backend): Promise<void> {
  const d = (b as { dispose?: () => unknown }).dispose;
  if (d) await d.call(b);
}
