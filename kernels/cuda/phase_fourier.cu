// Fused Fourier-space update of the phase-retrieval engine (see kernels/phase_fourier.py).
//   mode 0 (GPS):     Ye = use_filter ? filt*Y : Y;  w = z - t*Ye;
//                     z' = known ? c_keep*b*w/|w| + c_mix*w : w   (|w| = 0 -> phase 1);
//                     z <- z';  buf <- scale*(Ye + s*(2z' - z))
//   mode 1 (PROJECT): buf <- scale * (known ? b*buf/|buf| : buf)
//   mode 2 (FILTER):  buf <- scale * filt * buf
// bk = b on known pixels, -1 on unknown ones. Arrays are (runs, npix); bk and filt are (npix,),
// shared by every run. Launch: grid (x: pixel blocks, y: run), grid-stride over the pixels.
#include "common.cuh"

template <typename C, typename R>
__device__ __forceinline__ C make_c(R re, R im);
template <>
__device__ __forceinline__ float2 make_c<float2, float>(float re, float im) { return make_float2(re, im); }
template <>
__device__ __forceinline__ double2 make_c<double2, double>(double re, double im) { return make_double2(re, im); }

__device__ __forceinline__ float rsqrt_r(float x) { return rsqrtf(x); }
// |w|^2 at or below the smallest normal number counts as w = 0 (phase 1), as in the CPU twin
__device__ __forceinline__ float tiny_r(float) { return 1.17549435e-38f; }
__device__ __forceinline__ double tiny_r(double) { return 2.2250738585072014e-308; }
__device__ __forceinline__ double rsqrt_r(double x) { return rsqrt(x); }

template <typename C, typename R>
__device__ void phase_fourier_impl(const int mode, C* __restrict__ z, C* __restrict__ buf, const R* __restrict__ bk,
                                   const R* __restrict__ filt, const int use_filter, const R t, const R s,
                                   const R c_keep, const R c_mix, const R scale, const long long npix) {
    const long long run_off = (long long)blockIdx.y * npix;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
        const long long i = run_off + p;
        const R b = __ldg(&bk[p]);
        C u = buf[i];
        if (mode == 0) {
            if (use_filter) {
                const R f = __ldg(&filt[p]);
                u.x *= f;
                u.y *= f;
            }
            const C zv = z[i];
            const C w = make_c<C, R>(zv.x - t * u.x, zv.y - t * u.y);
            C zn = w;
            if (b >= (R)0) {
                const R m2 = w.x * w.x + w.y * w.y;
                if (m2 > tiny_r((R)0)) {
                    const R f = c_keep * b * rsqrt_r(m2) + c_mix;
                    zn = make_c<C, R>(w.x * f, w.y * f);
                } else {
                    zn = make_c<C, R>(c_keep * b + c_mix * w.x, c_mix * w.y);
                }
            }
            z[i] = zn;
            buf[i] = make_c<C, R>(scale * (u.x + s * ((R)2 * zn.x - zv.x)), scale * (u.y + s * ((R)2 * zn.y - zv.y)));
        } else if (mode == 1) {
            if (b >= (R)0) {
                const R m2 = u.x * u.x + u.y * u.y;
                if (m2 > tiny_r((R)0)) {
                    const R f = b * scale * rsqrt_r(m2);
                    u = make_c<C, R>(u.x * f, u.y * f);
                } else {
                    u = make_c<C, R>(b * scale, (R)0);
                }
            } else {
                u = make_c<C, R>(u.x * scale, u.y * scale);
            }
            buf[i] = u;
        } else {
            const R f = __ldg(&filt[p]) * scale;
            buf[i] = make_c<C, R>(u.x * f, u.y * f);
        }
    }
}

extern "C" __global__ void phase_fourier_c64(const int mode, float2* __restrict__ z, float2* __restrict__ buf,
                                             const float* __restrict__ bk, const float* __restrict__ filt,
                                             const int use_filter, const float t, const float s, const float c_keep,
                                             const float c_mix, const float scale, const long long npix) {
    phase_fourier_impl<float2, float>(mode, z, buf, bk, filt, use_filter, t, s, c_keep, c_mix, scale, npix);
}

extern "C" __global__ void phase_fourier_c128(const int mode, double2* __restrict__ z, double2* __restrict__ buf,
                                              const double* __restrict__ bk, const double* __restrict__ filt,
                                              const int use_filter, const double t, const double s,
                                              const double c_keep, const double c_mix, const double scale,
                                              const long long npix) {
    phase_fourier_impl<double2, double>(mode, z, buf, bk, filt, use_filter, t, s, c_keep, c_mix, scale, npix);
}
