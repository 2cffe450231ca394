// Weighted projection residual and per-projection L1 sums (see kernels/projection_residual.py):
//   d = scale*src[k, (r+row_shift) mod Qr, (c+col_shift) mod Qc] - data[k,r,c]
//   out[k, r+ob, c+ob] = d * weights[k,r,c];  l1[k] += |d| where weights != 0 (l1 zeroed by the caller)
// out has a border of ob pixels that is set to 0. grid.y = projection, block reduction, one atomicAdd per block.
#include "common.cuh"

__device__ __forceinline__ int wrap_index(int i, int n) {
    const int m = i % n;
    return m < 0 ? m + n : m;
}

extern "C" __global__ void projection_residual_f32(const float* __restrict__ src, const float* __restrict__ data,
                                                   const float* __restrict__ weights, float* __restrict__ out,
                                                   double* __restrict__ l1, int n, int rows, int cols, int qr,
                                                   int qc, float scale, int row_shift, int col_shift, int ob) {
    const int k = blockIdx.y;
    const int rp = rows + 2 * ob, cp = cols + 2 * ob;
    const long long npix = (long long)rp * cp;
    double acc = 0.0;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += (long long)blockDim.x * gridDim.x) {
        const int r = (int)(p / cp) - ob;
        const int c = (int)(p % cp) - ob;
        float res = 0.0f;
        if (r >= 0 && r < rows && c >= 0 && c < cols) {
            const long long di = ((long long)k * rows + r) * cols + c;
            const float s = src[((long long)k * qr + wrap_index(r + row_shift, qr)) * qc + wrap_index(c + col_shift, qc)];
            const float d = scale * s - data[di];
            const float w = weights[di];
            res = d * w;
            if (w != 0.0f) acc += fabs((double)d);
        }
        out[(long long)k * npix + p] = res;
    }
    acc = block_reduce_sum(acc);
    if (threadIdx.x == 0) atomicAdd(l1 + k, acc);
}
