// GELU, exact erf form: x·½·(1 + erf(x/√2)) = x·½·erfc(−x/√2).
//
// WGSL has no erf. erfc is evaluated with the Chebyshev-fitted form of Numerical Recipes in C
// (2nd ed., §6.2, erfcc), whose fractional error is below 1.2e-7 for every argument:
//   erfc(z) = t·exp(−z² − 1.26551223 + t·(1.00002368 + … + t·0.17087277)),  t = 1/(1 + z/2), z ≥ 0
//   erfc(−z) = 2 − erfc(z).
// Writing GELU through erfc keeps that *relative* accuracy on the negative side, where
// 1 + erf(x/√2) is a small difference; measured against the f64 oracle, test/webgpu.test.ts.
struct Params { n: u32, x_off: u32, o_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;

fn erfc_nr(v: f32) -> f32 {
  let z = abs(v);
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = t * exp(-z * z + poly);
  return select(r, 2.0 - r, v < 0.0);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let v = x[p.x_off + i];
  o[p.o_off + i] = 0.5 * v * erfc_nr(-v * 0.70710678118654752);
}
