// Choosing the next token from a row of logits, the way Hugging Face `generate` does for Qwen-VL-Chat.
//
// Order (transformers 4.3x, GenerationMixin._get_logits_processor then _get_logits_warper):
//   1. RepetitionPenaltyLogitsProcessor over every id seen so far (prompt included)
//   2. greedy: argmax — or sampling: TemperatureLogitsWarper → TopKLogitsWarper → TopPLogitsWarper,
//      softmax, one multinomial draw.
// Qwen-VL-Chat's generation_config.json samples with top_p 0.5, top_k 0 (off), temperature 1.
//
// Randomness comes from a seeded xoshiro128** generator, so a given seed gives the same tokens on
// every machine and backend (given the same logits).
//
// API
//   interface SamplingOptions { doSample, temperature?, topK?, topP?, repetitionPenalty?, seed? }
//   class Rng(seed)                 .next(): number in [0, 1)
//   argmax(logits): number          first index of the largest value (torch.argmax's choice)
//   applyRepetitionPenalty(logits, ids, penalty)   in place
//   applyTemperature(logits, t) / topKFilter(logits, k) / topPFilter(logits, p)   in place (−inf = removed)
//   softmax(logits): Float64Array
//   class Sampler(options)          .next(logits, previousIds): number
//   validateSamplingOptions(options)   throws a clear Error on nonsense values

export interface SamplingOptions {
  /** false: greedy (argmax). true: temperature / top-k / top-p sampling. */
  readonly doSample: boolean;
  /** Divide logits by this before sampling (HF TemperatureLogitsWarper). Default 1. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens; 0 = off (HF TopKLogitsWarper). Default 0. */
  readonly topK?: number;
  /** Nucleus sampling: keep the smallest set whose probability reaches p; 1 = off. Default 1. */
  readonly topP?: number;
  /** HF RepetitionPenaltyLogitsProcessor: 1 = off; > 1 discourages repeats. Default 1. */
  readonly repetitionPenalty?: number;
  /** Seed of the sampling RNG. Default 0. */
  readonly seed?: number;
}

export function validateSamplingOptions(o: SamplingOptions): void {
  const t = o.temperature ?? 1;
  if (!(t > 0) || !Number.isFinite(t)) throw new Error(`sampling: temperature must be a positive number, got ${t}`);
  const k = o.topK ?? 0;
  if (!Number.isInteger(k) || k < 0) throw new Error(`sampling: topK must be an integer ≥ 0, got ${k}`);
  const p = o.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new Error(`sampling: topP must be in (0, 1], got ${p}`);
  const r = o.repetitionPenalty ?? 1;
  if (!(r > 0) || !Number.isFinite(r)) throw new Error(`sampling: repetitionPenalty must be a positive number, got ${r}`);
  const s = o.seed ?? 0;
  if (!Number.isInteger(s)) throw new Error(`sampling: seed must be an integer, got ${s}`);
}

/**
 * xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c), state seeded by
 * splitmix32 so that any integer seed, 0 included, gives a good state.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let x = seed >>> 0;
    const splitmix32 = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix32();
    this.s1 = splitmix32();
    this.s2 = splitmix32();
    this.s3 = splitmix32();
  }

  /** Next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const rotl = (v: number, k: number): number => ((v << k) | (v >>> (32 - k))) >>> 0;
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

/** Index of the largest logit; the first one on ties, as torch.argmax returns. NaN never wins. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

/**
 * HF RepetitionPenaltyLogitsProcessor: for every distinct id already in the sequence,
 * score < 0 ? score·penalty : score/penalty (in place).
 */
export function applyRepetitionPenalty(logits: Float32Array, ids: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const id of ids) {
    if (seen.has(id) || id < 0 || id >= logits.length) continue;
    seen.add(id);
    const s = logits[id];
    logits[id] = s < 0 ? s * penalty : s / penalty;
  }
}

/** HF TemperatureLogitsWarper: scores / temperature (in place). */
export function applyTemperature(logits: Float32Array, temperature: number): void {
  if (temperature === 1) return;
  for (let i = 0; i < logits.length; i++) logits[i] = logits[i] / temperature;
}

/**
 * HF TopKLogitsWarper: remove every score below the k-th largest (ties with it survive), in place.
 * k = 0 is off; k larger than the vocabulary keeps everything.
 */
export function topKFilter(logits: Float32Array, k: number): void {
  if (k <= 0 || k >= logits.length) return;
  const sorted = Float32Array.from(logits).sort(); // ascending; NaN last
  const kth = sorted[logits.length - k];
  for (let i = 0; i < logits.length; i++) if (logits[i] < kth) logits[i] = -Infinity;
}

/** Softmax in float64 (max-subtracted); −inf entries get probability 0. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(logits.length);
  if (max === -Infinity) throw new Error("softmax: every logit is −inf (all tokens filtered out)");
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp(logits[i] - max);
    sum += p[i];
  }
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/**
 * HF TopPLogitsWarper (in place): sort ascending, cumulative softmax; remove the tokens whose
 * cumulative probability is ≤ 1 − top_p, always keeping the most likely `minTokensToKeep`.
 * In other words: keep the most likely tokens until their mass reaches top_p.
 */
export function topPFilter(logits: Float32Array, topP: number, minTokensToKeep = 1): void {
  if (topP >= 1) return;
  const n = logits.length;
  const order = Array.from({ length: n }, (_, i) => i);
  // Ascending by score; equal scores by index so the result does not depend on the sort.
  order.sort((a, b) => logits[a] - logits[b] || a - b);
  const probs = softmax(logits);
  let cumulative = 0;
  const threshold = 1 - topP;
  for (let r = 0; r < n - minTokensToKeep; r++) {
    cumulative += probs[order[r]];
    if (cumulative <= threshold) logits[order[r]] = -Infinity;
    else break; // cumulative sums only grow: nothing further is removed
  }
}

/** Draw an index from probabilities `p` (summing to 1) with one uniform number u ∈ [0, 1). */
export function drawFromProbs(p: Float64Array, u: number): number {
  let acc = 0;
  let last = -1;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) continue;
    acc += p[i];
    last = i;
    if (u < acc) return i;
  }
  // Rounding left acc slightly below 1 and u fell in the gap: the last possible token.
  if (last < 0) throw new Error("sampling: no token has nonzero probability");
  return last;
}

/** Picks next tokens according to SamplingOptions; holds the RNG state. */
export class Sampler {
  private readonly rng: Rng;

  constructor(readonly options: SamplingOptions) {
    validateSamplingOptions(options);
    this.rng = new Rng(options.seed ?? 0);
  }

  /**
   * The next token for `logits` (one row over the vocabulary) given every id so far (prompt and
   * generated), used by the repetition penalty. `logits` is not modified.
   */
  next(logits: Float32Array, previousIds: Iterable<number>): number {
    const o = this.options;
    const scores = Float32Array.from(logits);
    applyRepetitionPenalty(scores, previousIds, o.repetitionPenalty ?? 1);
    if (!o.doSample) return argmax(scores);
    applyTemperature(scores, o.temperature ?? 1);
    topKFilter(scores, o.topK ?? 0);
    topPFilter(scores, o.topP ?? 1);
    return drawFromProbs(softmax(scores), this.rng.next());
  }
}
