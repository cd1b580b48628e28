// Element-wise kernels over f32 arrays living in the shared linear memory.
export function add_f32(a: usize, b: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    store<f32>(out + (<usize>i << 2), load<f32>(a + (<usize>i << 2)) + load<f32>(b + (<usize>i << 2)));
  }
}
