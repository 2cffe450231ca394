// `linear` forward projection P_k: every voxel's sub-points splatted bilinearly with atomicAdd,
// one voxel per thread, looping over the projections (coefficients staged in shared memory).
// out (nk, rows + 2*border, cols + 2*border) float32 must be zeroed by the caller; taps outside the
// detector are dropped. See kernels/forward_project.py.
#include "common.cuh"
#include "projector_taps.cuh"

template <int SUB>
__device__ void forward_project_impl(const float* __restrict__ volume, const double* __restrict__ coeffs, int nk,
                                     int rows, int cols, int border, float* __restrict__ out, int nz, int ny,
                                     int nx) {
    __shared__ float c[FASTEM_PROJ_CHUNK * 8];
    const long long nvox = (long long)nz * ny * nx;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int ix = (int)(idx % nx);
    const int iy = (int)((idx / nx) % ny);
    const int iz = (int)(idx / ((long long)nx * ny));
    const int rp = rows + 2 * border, cp = cols + 2 * border;
    const float fx = (float)ix, fy = (float)iy, fz = (float)iz;
    const float val = (idx < nvox) ? __ldg(volume + idx) : 0.0f;
    const int ntaps = (SUB == 1) ? 2 : 3;
    for (int k0 = 0; k0 < nk; k0 += FASTEM_PROJ_CHUNK) {
        const int kn = min(FASTEM_PROJ_CHUNK, nk - k0);
        __syncthreads();
        for (int t = threadIdx.x; t < kn * 8; t += blockDim.x) c[t] = (float)coeffs[(long long)k0 * 8 + t];
        __syncthreads();
        if (val == 0.0f) continue;  // also covers idx >= nvox
        for (int k = 0; k < kn; ++k) {
            const float* ck = c + 8 * k;
            const float u = ck[0] * fx + ck[1] * fy + ck[2] * fz + ck[3];
            const float v = ck[4] * fx + ck[5] * fy + ck[6] * fz + ck[7];
            int iu, iv;
            float wu[3], wv[3];
            axis_taps<SUB>(u, iu, wu[0], wu[1], wu[2]);
            axis_taps<SUB>(v, iv, wv[0], wv[1], wv[2]);
            float* img = out + (long long)(k0 + k) * rp * cp;
#pragma unroll
            for (int a = 0; a < ntaps; ++a) {
                const int j = iv + a;
                if (j < 0 || j >= rows) continue;
                float* row = img + (long long)(j + border) * cp + border;
                const float wa = wv[a] * val;
#pragma unroll
                for (int b = 0; b < ntaps; ++b) {
                    const int i = iu + b;
                    if (i >= 0 && i < cols) atomicAdd(row + i, wu[b] * wa);
                }
            }
        }
    }
}

extern "C" __global__ void forward_project_sub1(const float* __restrict__ volume, const double* __restrict__ coeffs,
                                                int nk, int rows, int cols, int border, float* __restrict__ out,
                                                int nz, int ny, int nx) {
    forward_project_impl<1>(volume, coeffs, nk, rows, cols, border, out, nz, ny, nx);
}

extern "C" __global__ void forward_project_sub4(const float* __restrict__ volume, const double* __restrict__ coeffs,
                                                int nk, int rows, int cols, int border, float* __restrict__ out,
                                                int nz, int ny, int nx) {
    forward_project_impl<4>(volume, coeffs, nk, rows, cols, border, out, nz, ny, nx);
}
