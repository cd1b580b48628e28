// How the model graph asks for weights: by checkpoint name, through a prefixed builder
// (`vb.pp("transformer.visual")`), with the expected shape so that a wrong checkpoint fails
// at load time naming the tensor, never deep inside a kernel.
import type { LinearWeights } from "../ops/backend.js";

export interface LinearSpec {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Whether a float checkpoint must carry `<name>.bias`. GPTQ linears always carry one. */
  readonly bias: boolean;
  /**
   * The float weight is stored [in, out] (a bare `nn.Parameter` used as `x @ W`, like
   * `transformer.visual.proj`) instead of nn.Linear's [out, in]; the loader transposes it.
   */
  readonly transposed?: boolean;
}

export interface WeightSource {
  /** A builder whose names are prefixed with `prefix + "."`. */
  pp(prefix: string): WeightSource;
  /** Full name (prefix included) of `name`, for error messages. */
  path(name: string): string;
  has(name: string): boolean;
  /** A tensor of any float dtype as f32, after checking its shape. */
  f32(name: string, shape: readonly number[]): Float32Array;
  /**
   * A linear layer: GPTQ when `<name>.qweight` exists, dense `<name>.weight` otherwise.
   * The graph does not care which it got.
   */
  linear(name: string, spec: LinearSpec): LinearWeights;
}
