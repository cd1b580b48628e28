// Choosing the GPTQ kernels per machine (docs/performance.md, "Variant selection").
//
// Which exact GPTQ kernel is fastest depends on the CPU more than on anything else: the relaxed
// i8 dot is one vpdpbusd with AVX-VNNI (i8x3 wins) but three instructions without it (the
// i8x3 GEMV then ran at 23% of the read limit and the f32 panels did prefill 1.8× faster). So the
// backend times the candidates once per process — per (build, thread count), like FFTW's wisdom —
// on small shapes of the model's kind, and keeps the fastest. Only variants that pass the
// conformance tolerance are candidates (precision "fast" never is); an option or an environment
// variable forces one instead.
//
// This file holds what does not need the kernels: option parsing, the probe's shapes and inputs,
// the timing loop and the decision rule. The backend (backend.ts) supplies the kernel runs.

import { Tensor } from "../backend.js";

export type DecodeQ4 = "i8x3" | "i16x2" | "f32";
export const DECODE_Q4: readonly DecodeQ4[] = ["i8x3", "i16x2", "f32"];
export type PrefillQ4 = "i8x3" | "f32";
export const PREFILL_Q4: readonly PrefillQ4[] = ["i8x3", "f32"];

/** Environment variables that force a kernel when the option is not given ("auto" probes). */
export const ENV_DECODE_Q4 = "QWENVL_DECODE_Q4";
export const ENV_PREFILL_Q4 = "QWENVL_PREFILL_Q4";

/** Where a choice came from. */
export type ChoiceSource = "option" | "env" | "probe" | "not probed";

/**
 * Resolve one kernel setting: the option if given (a name or "auto"), else the environment
 * variable (a name, "auto" or empty), else "auto". Unknown names throw, naming the setting and the
 * accepted values.
 */
export function resolveSetting<T extends string>(
  what: string,
  option: T | "auto" | undefined,
  envName: string,
  allowed: readonly T[],
  env: NodeJS.ProcessEnv = process.env,
): { value: T | "auto"; source: "option" | "env" | "default" } {
  const check = (v: string, where: string): T | "auto" => {
    if (v === "auto" || (allowed as readonly string[]).includes(v)) return v as T | "auto";
    throw new Error(`WasmBackend: ${where} must be one of ${allowed.join(", ")} or "auto", got ${JSON.stringify(v)}`);
  };
  if (option !== undefined) return { value: check(String(option), what), source: "option" };
  const e = env[envName];
  if (e !== undefined && e.trim() !== "") return { value: check(e.trim(), `${envName} (environment, for ${what})`), source: "env" };
  return { value: "auto", source: "default" };
}

/** Per-variant timings of one probe, microseconds per call. */
export interface VariantTiming {
  readonly minUs: number;
  readonly medianUs: number;
  /** Every timed call, in order (warm-up calls excluded). */
  readonly runsUs: readonly number[];
}

export interface ProbeResult<T extends string> {
  readonly choice: T;
  readonly timings: Readonly<Record<T, VariantTiming>>;
  /** One line: what won, by how much, and why. */
  readonly reason: string;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Time every variant: `warmup` untimed calls each (first calls run baseline-compiled code and
 * page in the probe's memory), then `reps` rounds in which every variant runs once, in an order
 * that rotates from round to round, so that a slow stretch of a shared machine hits all of them.
 */
export function timeVariants<T extends string>(
  runs: ReadonlyMap<T, () => void>,
  reps: number,
  warmup: number,
  now: () => number = () => performance.now(),
): Record<T, number[]> {
  let names = [...runs.keys()];
  for (const n of names) for (let i = 0; i < warmup; i++) runs.get(n)!();
  const out = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<T, number[]>;
  for (let r = 0; r < reps; r++) {
    for (let j = 0; j < names.length; j++) {
      const n = names[(j + r) % names.length];
      const t0 = now();
      runs.get(n)!();
      out[n].push((now() - t0) * 1000);
    }
    // After two rounds, a variant whose best call is DROP× the best variant's cannot win (noise
    // only adds time): stop timing it.
    if (r >= 1 && names.length > 1) {
      const best = Math.min(...names.map((n) => Math.min(...out[n])));
      names = names.filter((n) => Math.min(...out[n]) <= DROP * best);
    }
  }
  return out;
}

/** Ratio to the best variant beyond which a variant is no longer timed (timeVariants). */
export const DROP = 1.5;

/**
 * The decision rule: the variant with the smallest minimum time wins (noise on a shared machine
 * only ever adds time), except that `preferred` (the build's default) is kept unless another is
 * faster by more than `margin` (a fraction): near-ties then do not flip from run to run.
 */
export function choose<T extends string>(timesUs: Readonly<Record<T, readonly number[]>>, preferred: NoInfer<T>, margin = 0.05): ProbeResult<T> {
  const names = Object.keys(timesUs) as T[];
  if (names.length === 0) throw new Error("autotune: no variants to choose from");
  const timings = Object.fromEntries(
    names.map((n) => {
      const xs = timesUs[n];
      return [n, { minUs: round(Math.min(...xs)), medianUs: round(median(xs)), runsUs: xs.map(round) }];
    }),
  ) as unknown as Record<T, VariantTiming>;
  const min = (n: T): number => Math.min(...timesUs[n]);
  let best = names[0];
  for (const n of names) if (min(n) < min(best)) best = n;
  let choice = best;
  let why: string;
  if (best !== preferred && names.includes(preferred) && min(preferred) <= min(best) * (1 + margin)) {
    choice = preferred;
    why = `${preferred} kept: within ${(margin * 100).toFixed(0)}% of ${best}`;
  } else if (best === preferred) {
    why = `${best} fastest`;
  } else {
    why = `${best} fastest, ${(min(preferred) / min(best)).toFixed(2)}× faster than ${preferred}`;
  }
  const list = names.map((n) => `${n} ${timings[n].minUs.toFixed(0)} µs`).join(", ");
  return { choice, timings, reason: `${why} (min per call: ${list})` };
}

const round = (x: number): number => Math.round(x * 10) / 10;

/** What the backend chose and why (WasmBackend.tuning). */
export interface Q4Tuning {
  readonly decodeQ4: DecodeQ4;
  readonly prefillQ4: PrefillQ4;
  readonly source: { readonly decodeQ4: ChoiceSource; readonly prefillQ4: ChoiceSource };
  /** Wall time of the probe that produced this choice (0 when nothing was probed). */
  readonly probeMs: number;
  /** Whether the probe result came from an earlier backend of this process (same build, threads). */
  readonly cached: boolean;
  /** Probe shapes, [M, K, N] with groups of 128. */
  readonly shapes: { readonly decode: readonly number[]; readonly prefill: readonly number[] };
  readonly timings: {
    readonly decodeQ4?: Readonly<Partial<Record<DecodeQ4, VariantTiming>>>;
    readonly prefillQ4?: Readonly<Partial<Record<PrefillQ4, VariantTiming>>>;
  };
  readonly reason: { readonly decodeQ4: string; readonly prefillQ4: string };
}

/**
 * Probe shapes [M, K, N] (groups of 128): a K = 4096 GEMV whose 1 MiB of records sits in the
 * cores' L2 (a decode step streams 3.5 GB from DRAM, but what differs between the variants is the
 * work per weight), and a small prefill GEMM (67 MFLOP, ~0.7 ms on 2 cores).
 */
export const PROBE_DECODE = [1, 4096, 512] as const;
export const PROBE_PREFILL = [32, 2048, 512] as const;
/**
 * Timed rounds and untimed first calls per variant. Two untimed calls for prefill too: a kernel's
 * first calls can still run baseline-compiled code while V8 optimises it in the background; with
 * one, a run once timed i8x3 at 1.6 ms per call against its steady 0.9 ms and chose the f32
 * panels, 14% slower than i8x3 at the real prefill shape (docs/performance.md).
 */
export const PROBE_DECODE_REPS = 7, PROBE_DECODE_WARMUP = 2;
export const PROBE_PREFILL_REPS = 4, PROBE_PREFILL_WARMUP = 2;

/** The probe's activations: deterministic, magnitudes up to 7 varying along the row. */
export function probeInput(M: number, K: number): Tensor {
  const d = new Float32Array(M * K);
  for (let i = 0; i < d.length; i++) d[i] = Math.sin(i * 0.7318) * (1 + (i % 7));
  return new Tensor([M, K], d);
}
