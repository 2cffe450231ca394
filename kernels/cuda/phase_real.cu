// Fused real-space update of the phase-retrieval engine (see kernels/phase_real.py).
// wsup = -W inside the support, +W outside (W > 0); x = Re(buf); good = (x in S) && x >= 0.
//   mode 0 (GPS):       buf <- W * (in S ? min(Re,0) + i Im : buf)
//   mode 1 (ER):        buf <- good ? x : 0
//   mode 2 (HIO):       u <- good ? x : u - beta x;  buf <- u
//   mode 3 (OSS split): h = u - beta x;  u <- good ? x : h;  buf <- h
//   mode 4 (OSS merge): u <- in S ? u : x;  buf <- u
// modes 1-3 write image <- good ? x : 0 when write_image. Arrays are (runs, npix); wsup is
// (npix,), shared by every run (wsup_stride 0), or (runs, npix), one per run (wsup_stride npix).
// Launch: grid (x: pixel blocks, y: run).
#include "common.cuh"

template <typename C, typename R>
__device__ __forceinline__ C real_to_c(R re);
template <>
__device__ __forceinline__ float2 real_to_c<float2, float>(float re) { return make_float2(re, 0.0f); }
template <>
__device__ __forceinline__ double2 real_to_c<double2, double>(double re) { return make_double2(re, 0.0); }

template <typename C, typename R>
__device__ void phase_real_impl(const int mode, C* __restrict__ buf, const R* __restrict__ wsup, R* __restrict__ u,
                                R* __restrict__ image, const int write_image, const R beta, const long long npix,
                                const long long wsup_stride) {
    const long long run_off = (long long)blockIdx.y * npix;
    const R* __restrict__ wrun = wsup + (long long)blockIdx.y * wsup_stride;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
        const long long i = run_off + p;
        R ws = __ldg(&wrun[p]);
        C v = buf[i];
        if (mode == 0) {
            if (ws < (R)0) {
                if (v.x > (R)0) v.x = (R)0;
                ws = -ws;
            }
            v.x *= ws;
            v.y *= ws;
            buf[i] = v;
            continue;
        }
        const R x = v.x;
        const bool good = (ws < (R)0) && (x >= (R)0);
        if (write_image) image[i] = good ? x : (R)0;
        R un;
        if (mode == 1) {
            un = good ? x : (R)0;
        } else if (mode == 2) {
            un = good ? x : u[i] - beta * x;
            u[i] = un;
        } else if (mode == 3) {
            const R h = u[i] - beta * x;
            u[i] = good ? x : h;
            un = h;
        } else {
            un = (ws < (R)0) ? u[i] : x;
            u[i] = un;
        }
        buf[i] = real_to_c<C, R>(un);
    }
}

extern "C" __global__ void phase_real_c64(const int mode, float2* __restrict__ buf, const float* __restrict__ wsup,
                                          float* __restrict__ u, float* __restrict__ image, const int write_image,
                                          const float beta, const long long npix, const long long wsup_stride) {
    phase_real_impl<float2, float>(mode, buf, wsup, u, image, write_image, beta, npix, wsup_stride);
}

extern "C" __global__ void phase_real_c128(const int mode, double2* __restrict__ buf, const double* __restrict__ wsup,
                                           double* __restrict__ u, double* __restrict__ image, const int write_image,
                                           const double beta, const long long npix,
                                           const long long wsup_stride) {
    phase_real_impl<double2, double>(mode, buf, wsup, u, image, write_image, beta, npix, wsup_stride);
}
