// Seeded randomness and small helpers shared by the robustness tests (test/robust-*.test.ts).

/** mulberry32: a tiny, fast, seedable PRNG; the same seed gives the same sequence everywhere. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
  };
}

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number;
  pick<T>(xs: readonly T[]): T;
}

/** What a robustness run saw: how many inputs, how many clean errors, how many loaded fine. */
export interface Tally {
  tried: number;
  errors: number;
  loads: number;
  /** Problems: a crash (non-Error, TypeError, RangeError...), or a message missing what it must name. */
  bad: string[];
}

export function tally(): Tally {
  return { tried: 0, errors: 0, loads: 0, bad: [] };
}

/**
 * Runs `f` on one mutated input: a plain Error whose message includes every string of `mustName`
 * counts as a clean error; any other exception is recorded in `bad`.
 */
export async function expectCleanOrOk(t: Tally, label: string, mustName: readonly string[], f: () => unknown): Promise<void> {
  t.tried++;
  try {
    await f();
    t.loads++;
    if (process.env.ROBUST_VERBOSE) console.log(`        loaded: ${label}`);
  } catch (e) {
    if (!(e instanceof Error) || (e.constructor !== Error && e.name !== "TokenizerError")) {
      t.bad.push(`${label}: not a plain Error: ${String((e as Error)?.stack ?? e)}`);
      return;
    }
    const missing = mustName.filter((s) => !e.message.includes(s));
    if (missing.length > 0) {
      t.bad.push(`${label}: message does not name ${missing.map((s) => JSON.stringify(s)).join(", ")}: ${e.message.slice(0, 300)}`);
      return;
    }
    t.errors++;
  }
}
