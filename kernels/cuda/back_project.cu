// Back projection B_k (RESIRE's gradient): bilinear gather at each of the voxel's object-space
// sub-points (projector_taps.cuh), mean over them; one voxel per thread, all projections
// accumulated in registers, one read-modify-write of the voxel:
//   out <- beta*out + alpha*weights*sum_k B_k(images[k]);  out <- max(out, 0) if positivity.
// images (nk, rows + 2*border, cols + 2*border) float32, detector pixel (r, c) at [r+border, c+border];
// pixels outside the detector read as 0. See kernels/back_project.py.
#include "common.cuh"
#include "projector_taps.cuh"

// Bilinear read of the image over the cell (iu, fu, iv, fv) (subpoint_cell); pixels outside the
// detector read as 0.
__device__ __forceinline__ float gather(const float* __restrict__ img, int cp, int rows, int cols, int border,
                                        int iu, float fu, int iv, float fv) {
    float acc = 0.0f;
#pragma unroll
    for (int a = 0; a < 2; ++a) {
        const int j = iv + a;
        if (j < 0 || j >= rows) continue;
        const float* row = img + (long long)(j + border) * cp + border;
        float r = 0.0f;
#pragma unroll
        for (int b = 0; b < 2; ++b) {
            const int i = iu + b;
            if (i >= 0 && i < cols) r += (b ? fu : 1.0f - fu) * __ldg(row + i);
        }
        acc += (a ? fv : 1.0f - fv) * r;
    }
    return acc;
}

template <int SUB>
__device__ void back_project_impl(const float* __restrict__ images, const double* __restrict__ coeffs, int nk,
                                  int rows, int cols, int border, float* __restrict__ out, int nz, int ny, int nx,
                                  float alpha, float beta, const float* __restrict__ weights, int use_weights,
                                  int positivity) {
    __shared__ float c[FASTEM_PROJ_CHUNK * 8];
    const VoxelThread t = voxel_thread(nz, ny, nx);
    const int rp = rows + 2 * border, cp = cols + 2 * border;
    float acc = 0.0f;
    for (int k0 = 0; k0 < nk; k0 += FASTEM_PROJ_CHUNK) {
        const int kn = min(FASTEM_PROJ_CHUNK, nk - k0);
        stage_coeffs(c, coeffs, k0, kn);
        if (t.inside) {
            for (int k = 0; k < kn; ++k) {
                const float* ck = c + 8 * k;
                float u, v;
                voxel_uv(ck, (float)t.ix, (float)t.iy, (float)t.iz, u, v);
                const float* img = images + (long long)(k0 + k) * rp * cp;
#pragma unroll
                for (int s = 0; s < SUB; ++s) {
                    int iu, iv;
                    float fu, fv;
                    subpoint_cell<SUB>(ck, u, v, s, iu, fu, iv, fv);
                    acc += gather(img, cp, rows, cols, border, iu, fu, iv, fv);
                }
            }
        }
    }
    if (t.inside) {
        float o = (beta == 0.0f) ? 0.0f : beta * out[t.idx];
        o += alpha * (use_weights ? weights[t.idx] : 1.0f) * acc * (1.0f / (float)SUB);
        if (positivity) o = fmaxf(o, 0.0f);
        out[t.idx] = o;
    }
}

extern "C" __global__ void back_project_sub1(const float* __restrict__ images, const double* __restrict__ coeffs,
                                             int nk, int rows, int cols, int border, float* __restrict__ out,
                                             int nz, int ny, int nx, float alpha, float beta,
                                             const float* __restrict__ weights, int use_weights, int positivity) {
    back_project_impl<1>(images, coeffs, nk, rows, cols, border, out, nz, ny, nx, alpha, beta, weights,
                         use_weights, positivity);
}

extern "C" __global__ void back_project_sub4(const float* __restrict__ images, const double* __restrict__ coeffs,
                                             int nk, int rows, int cols, int border, float* __restrict__ out,
                                             int nz, int ny, int nx, float alpha, float beta,
                                             const float* __restrict__ weights, int use_weights, int positivity) {
    back_project_impl<4>(images, coeffs, nk, rows, cols, border, out, nz, ny, nx, alpha, beta, weights,
                         use_weights, positivity);
}
