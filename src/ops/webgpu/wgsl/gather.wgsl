// Embedding rows to f32: out[t, c] = table[ids[t], c] for the ids inside this chunk's row range
// [r0, r0 + rows) (a large table is split by row ranges over several buffers, one dispatch each).
struct Params { n_ids: u32, cols: u32, r0: u32, rows: u32, dtype: u32, o_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg, 256u);
  if (e >= p.n_ids * p.cols) { return; }
  let t = e / p.cols;
  let c = e % p.cols;
  let id = ids[t];
  if (id < p.r0 || id >= p.r0 + p.rows) { return; }
  let k = (id - p.r0) * p.cols + c;
  o[p.o_off + e] = widen(table[word_index(k, p.dtype)], k, p.dtype);
}
