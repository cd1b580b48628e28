// Deferred finite check: a NaN/±Inf in x records index·4 + kind (0 NaN, 1 +Inf, 2 −Inf) into
// status[0] with atomicMin, so the earliest failing check wins (context.ts read() reports it).
// The test is on the bits (exponent all ones), immune to any fast-math folding of x != x.
struct Params { n: u32, x_off: u32, index: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> status: array<atomic<u32>, 4>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let bits = bitcast<u32>(x[p.x_off + i]);
  if ((bits & 0x7f800000u) == 0x7f800000u) {
    var kind = 0u;
    if ((bits & 0x007fffffu) == 0u) { kind = select(1u, 2u, (bits >> 31u) == 1u); }
    atomicMin(&status[0], p.index * 4u + kind);
  }
}
