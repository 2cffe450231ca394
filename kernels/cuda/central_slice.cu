// Kernels of the `fst` forward projection (see kernels/central_slice.py):
//   pad_rows_f32       volume (nz, ny, nx) -> rows (nz, ny, Px), centred at index 0 with wrap-around
//   scatter_planes_c64 rows' 1D spectra (nz, ny, H) -> half spectrum (Pz, Py, H), wrapped, zeros elsewhere
//   sample_slices_c64  trilinear central-plane sampling of the half spectrum (Hermitian lookup for kx < 0)
#include "common.cuh"

extern "C" __global__ void pad_rows_f32(const float* __restrict__ volume, float* __restrict__ out, int nz, int ny,
                                        int nx, int px) {
    const long long n = (long long)nz * ny * px;
    const int cx = nx / 2;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (long long)blockDim.x * gridDim.x) {
        const int j = (int)(p % px);
        const long long line = p / px;
        const int ix = (j + cx) % px;  // inverse of j = (ix - cx) mod px
        out[p] = (ix < nx) ? __ldg(volume + line * nx + ix) : 0.0f;
    }
}

extern "C" __global__ void scatter_planes_c64(const float2* __restrict__ rows, float2* __restrict__ spectrum, int nz,
                                              int ny, int h, int pz, int py) {
    const long long n = (long long)pz * py * h;
    const int cz = nz / 2, cy = ny / 2;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (long long)blockDim.x * gridDim.x) {
        const int j = (int)(p % h);
        const long long t = p / h;
        const int jy = (int)(t % py), jz = (int)(t / py);
        const int iz = (jz + cz) % pz, iy = (jy + cy) % py;
        spectrum[p] = (iz < nz && iy < ny) ? __ldg(rows + ((long long)iz * ny + iy) * h + j) : make_float2(0.0f, 0.0f);
    }
}

__device__ __forceinline__ float2 fetch_half(const float2* __restrict__ spec, int kz, int ky, int kx, int pz, int py,
                                             int px) {
    const int h = px / 2 + 1;
    if (kx >= px - px / 2) kx -= px;  // wrap into [-Px/2, Px/2)
    if (kx < 0) {
        const int z = ((-kz) % pz + pz) % pz, y = ((-ky) % py + py) % py;
        const float2 v = __ldg(spec + ((long long)z * py + y) * h - kx);
        return make_float2(v.x, -v.y);
    }
    const int z = (kz % pz + pz) % pz, y = (ky % py + py) % py;
    return __ldg(spec + ((long long)z * py + y) * h + kx);
}

// out (nk, qr, qh) complex64: row r -> kv = r wrapped to [-qr/2, qr/2), column c -> ku = c (qc = 2*(qh-1)
// even). The Nyquist row (kv = -qr/2) and column (ku = qc/2) are set to 0: their sign is ambiguous, and
// zeroing them keeps every plane exactly Hermitian for the real inverse FFT.
// frames (nk, 2, 3) float64: index step (x, y, z) per unit ku and per unit kv.
extern "C" __global__ void sample_slices_c64(const float2* __restrict__ spec, const double* __restrict__ frames,
                                             float2* __restrict__ out, int nk, int qr, int qh, int pz, int py,
                                             int px) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const int r = blockIdx.y * blockDim.y + threadIdx.y;
    const int k = blockIdx.z;
    if (c >= qh || r >= qr || k >= nk) return;
    const int kv = (r >= qr - qr / 2) ? r - qr : r;
    const double* f = frames + (long long)k * 6;
    const float x = (float)(c * f[0] + kv * f[3]);
    const float y = (float)(c * f[1] + kv * f[4]);
    const float z = (float)(c * f[2] + kv * f[5]);
    float2 acc = make_float2(0.0f, 0.0f);
    const bool nyquist = ((qr % 2 == 0) && r == qr / 2) || c == qh - 1;
    if (!nyquist && fabsf(x) < 0.5f * px && fabsf(y) < 0.5f * py && fabsf(z) < 0.5f * pz) {
        const float flx = floorf(x), fly = floorf(y), flz = floorf(z);
        const float wx = x - flx, wy = y - fly, wz = z - flz;
        const int ix = (int)flx, iy = (int)fly, iz = (int)flz;
#pragma unroll
        for (int dz = 0; dz < 2; ++dz) {
#pragma unroll
            for (int dy = 0; dy < 2; ++dy) {
#pragma unroll
                for (int dx = 0; dx < 2; ++dx) {
                    const float w = (dz ? wz : 1.0f - wz) * (dy ? wy : 1.0f - wy) * (dx ? wx : 1.0f - wx);
                    const float2 v = fetch_half(spec, iz + dz, iy + dy, ix + dx, pz, py, px);
                    acc.x += w * v.x;
                    acc.y += w * v.y;
                }
            }
        }
    }
    out[((long long)k * qr + r) * qh + c] = acc;
}
