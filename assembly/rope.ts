// Rotary position embedding, rotate-half form (upstream modeling_qwen.py, apply_rotary_pos_emb):
//   out = x·cos + rotate_half(x)·sin,  rotate_half([x1, x2]) = [−x2, x1]  (halves of D)
// so, for i < D/2:  out[i]       = x[i]·cos[i]             − x[i + D/2]·sin[i]
//                   out[i + D/2] = x[i + D/2]·cos[i + D/2] + x[i]·sin[i + D/2]
// x [T, H, D], cos/sin [T, D]. Work units are (t, h) rows, u = t·H + h, range [u0, u1).

export function rope(x: usize, cos: usize, sin: usize, out: usize, H: i32, D: i32, u0: i32, u1: i32, tid: i32): void {
  const half = D >> 1;
  const hb: usize = <usize>half << 2;
  for (let u = u0; u < u1; u++) {
    const t = u / H;
    const xr = x + ((<usize>u * D) << 2);
    const orow = out + ((<usize>u * D) << 2);
    const cr = cos + ((<usize>t * D) << 2);
    const sr = sin + ((<usize>t * D) << 2);
    let i = 0;
    for (; i + 4 <= half; i += 4) {
      const o: usize = <usize>i << 2;
      const x1 = v128.load(xr + o), x2 = v128.load(xr + hb + o);
      v128.store(orow + o, f32x4.sub(f32x4.mul(x1, v128.load(cr + o)), f32x4.mul(x2, v128.load(sr + o))));
      v128.store(orow + hb + o, f32x4.add(f32x4.mul(x2, v128.load(cr + hb + o)), f32x4.mul(x1, v128.load(sr + hb + o))));
    }
    for (; i < half; i++) {
      const o: usize = <usize>i << 2;
      const x1 = load<f32>(xr + o), x2 = load<f32>(xr + hb + o);
      store<f32>(orow + o, x1 * load<f32>(cr + o) - x2 * load<f32>(sr + o));
      store<f32>(orow + hb + o, x2 * load<f32>(cr + hb + o) + x1 * load<f32>(sr + hb + o));
    }
  }
}
