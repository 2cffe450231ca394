// `linear` forward projection P_k: every voxel's object-space sub-points (projector_taps.cuh)
// splatted bilinearly with atomicAdd, one voxel per thread, looping over the projections
// (coefficients staged in shared memory).
// out (nk, rows + 2*border, cols + 2*border) float32 must be zeroed by the caller; taps outside the
// detector are dropped. See kernels/forward_project.py.
#include "common.cuh"
#include "projector_taps.cuh"

template <int SUB>
__device__ void forward_project_impl(const float* __restrict__ volume, const double* __restrict__ coeffs, int nk,
                                     int rows, int cols, int border, float* __restrict__ out, int nz, int ny,
                                     int nx) {
    __shared__ float c[FASTEM_PROJ_CHUNK * 8];
    const VoxelThread t = voxel_thread(nz, ny, nx);
    const int rp = rows + 2 * border, cp = cols + 2 * border;
    const float val = t.inside ? __ldg(volume + t.idx) : 0.0f;
    const float sval = val / (float)SUB;
    for (int k0 = 0; k0 < nk; k0 += FASTEM_PROJ_CHUNK) {
        const int kn = min(FASTEM_PROJ_CHUNK, nk - k0);
        stage_coeffs(c, coeffs, k0, kn);
        if (val == 0.0f) continue;  // also covers the threads outside the volume
        for (int k = 0; k < kn; ++k) {
            const float* ck = c + 8 * k;
            float u0, v0;
            voxel_uv(ck, (float)t.ix, (float)t.iy, (float)t.iz, u0, v0);
            float* img = out + (long long)(k0 + k) * rp * cp;
#pragma unroll
            for (int s = 0; s < SUB; ++s) {
                int iu, iv;
                float fu, fv;
                subpoint_cell<SUB>(ck, u0, v0, s, iu, fu, iv, fv);
#pragma unroll
                for (int a = 0; a < 2; ++a) {
                    const int j = iv + a;
                    if (j < 0 || j >= rows) continue;
                    float* row = img + (long long)(j + border) * cp + border;
                    const float wa = (a ? fv : 1.0f - fv) * sval;
#pragma unroll
                    for (int b = 0; b < 2; ++b) {
                        const int i = iu + b;
                        if (i >= 0 && i < cols) atomicAdd(row + i, (b ? fu : 1.0f - fu) * wa);
                    }
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
