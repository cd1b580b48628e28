"""Native reference point for docs/kernels.md: OpenBLAS sgemm through numpy, same shape as
gemm_f32_gflops (M=1024, K=1664, N=4992), median of 7 runs.
    OPENBLAS_NUM_THREADS=1 python3 bench/native_sgemm.py
    OPENBLAS_NUM_THREADS=2 python3 bench/native_sgemm.py
"""
import os
import time

import numpy as np

M, K, N = 1024, 1664, 4992
a = np.random.rand(M, K).astype(np.float32)
b = np.random.rand(K, N).astype(np.float32)
a @ b  # warm-up
ts = []
for _ in range(7):
    t = time.perf_counter()
    a @ b
    ts.append(time.perf_counter() - t)
ts.sort()
blas = np.__config__.CONFIG["Build Dependencies"]["blas"] if hasattr(np.__config__, "CONFIG") else {}
print(f"numpy {np.__version__} ({blas.get('name', '?')} {blas.get('version', '')}), "
      f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}: "
      f"sgemm {2 * M * K * N / ts[3] / 1e9:.1f} GFLOP/s")
