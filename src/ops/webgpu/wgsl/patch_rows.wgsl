// Backend.patchRows, the ViT conv1's patches as rows (visual.py:405-407): out[q, (c·P + ky)·P + kx]
// = x[c, py·P + ky, px·P + kx] for patch q = py·(W/P) + px (raster order), each row in the
// (c, ky, kx) order of conv1.weight [width, C, P, P].
struct Params { n: u32, c: u32, h: u32, w: u32, ps: u32, x_off: u32, o_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg, 256u);
  if (e >= p.n) { return; }
  let pp = p.ps * p.ps;
  let q = e / (p.c * pp);
  let r = e % (p.c * pp);
  let c = r / pp;
  let ky = (r % pp) / p.ps;
  let kx = r % p.ps;
  let gw = p.w / p.ps;
  let py = q / gw;
  let px = q % gw;
  o[p.o_off + e] = x[p.x_off + c * p.h * p.w + (py * p.ps + ky) * p.w + px * p.ps + kx];
}
