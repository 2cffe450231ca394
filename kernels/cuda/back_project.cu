// Back projection B_k (RESIRE's gradient): bilinear gather at each of the voxel's object-space
// sub-points (projector_taps.cuh), mean over them; one voxel per thread, all projections
// accumulated in registers, one read-modify-write of the voxel:
//   out <- beta*out + alpha*weights*sum_k B_k(images[k]);  out <- max(out, 0) if positivity.
// images (nk, rows + 2*border, cols + 2*border) float32, detector pixel (r, c) at [r+border, c+border];
// pixels outside the detector read as 0. See kernels/back_project.py.
#include "common.cuh"
#include "projector_taps.cuh"

// Bilinear read of the image at (u, v); pixels outside the detector read as 0.
__device__ __forceinline__ float gather(const float* __restrict__ img, int cp, int rows, int cols, int border,
                                        float u, float v) {
    int iu, iv;
    float fu, fv;
    bilinear_taps(u, iu, fu);
    bilinear_taps(v, iv, fv);
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
    const long long nvox = (long long)nz * ny * nx;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int ix = (int)(idx % nx);
    const int iy = (int)((idx / nx) % ny);
    const int iz = (int)(idx / ((long long)nx * ny));
    const int rp = rows + 2 * border, cp = cols + 2 * border;
    const float fx = (float)ix, fy = (float)iy, fz = (float)iz;
    float acc = 0.0f;
    for (int k0 = 0; k0 < nk; k0 += FASTEM_PROJ_CHUNK) {
        const int kn = min(FASTEM_PROJ_CHUNK, nk - k0);
        __syncthreads();
        for (int t = threadIdx.x; t < kn * 8; t += blockDim.x) c[t] = (float)coeffs[(long long)k0 * 8 + t];
        __syncthreads();
        if (idx < nvox) {
            for (int k = 0; k < kn; ++k) {
                const float* ck = c + 8 * k;
                const float u = ck[0] * fx + ck[1] * fy + ck[2] * fz + ck[3];
                const float v = ck[4] * fx + ck[5] * fy + ck[6] * fz + ck[7];
                const float* img = images + (long long)(k0 + k) * rp * cp;
#pragma unroll
                for (int s = 0; s < SUB; ++s) {
                    float dx, dz;
                    subpoint_offset<SUB>(s, dx, dz);
                    acc += gather(img, cp, rows, cols, border, u + ck[0] * dx + ck[2] * dz,
                                  v + ck[4] * dx + ck[6] * dz);
                }
            }
        }
    }
    if (idx < nvox) {
        float o = (beta == 0.0f) ? 0.0f : beta * out[idx];
        o += alpha * (use_weights ? weights[idx] : 1.0f) * acc * (1.0f / (float)SUB);
        if (positivity) o = fmaxf(o, 0.0f);
        out[idx] = o;
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
