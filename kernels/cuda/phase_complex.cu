// Fused real-space update of the phase-retrieval engine for COMPLEX objects (see kernels/phase_complex.py).
// wsup = -W inside the support, +W outside (W > 0); x = buf (complex). P(x) is the projection onto
// C = {0} outside S; inside S the whole plane (constrained == 0) or the phase sector of centre c and half
// width h ((cc, sc) = (cos c, sin c), (ch, sh) = (cos h, sin h)): with w = x e^{-ic} = a + i b,
//   w in sector  <=>  a sh - |b| ch >= 0 && a >= 0;  else P = max(a ch + |b| sh, 0) (ch + i sgn(b) sh) e^{ic}.
// good = x in C.
//   mode 0 (GPS):       buf <- W * (x - P(x))
//   mode 5 (GPS, feedback dual): buf <- good ? 0 : W * x
//   mode 1 (ER):        buf <- P(x)
//   mode 2 (HIO):       u <- good ? x : u - beta x;  buf <- u
//   mode 3 (OSS split): h = u - beta x;  u <- good ? x : h;  buf <- h
//   mode 4 (OSS merge): u <- in S ? u : x;  buf <- u
// modes 1-3 write image <- P(x) when write_image. Arrays are (runs, npix); wsup is (npix,), shared by every
// run (wsup_stride 0), or (runs, npix), one per run (wsup_stride npix). u and image are never touched in the
// modes that do not use them (the host passes buf there).
// Launch: grid (x: pixel blocks, grid-stride; y: run).
#include "common.cuh"

template <typename C, typename R>
__device__ __forceinline__ C make_c(R re, R im);
template <>
__device__ __forceinline__ float2 make_c<float2, float>(float re, float im) { return make_float2(re, im); }
template <>
__device__ __forceinline__ double2 make_c<double2, double>(double re, double im) { return make_double2(re, im); }

// P(v) (0 outside S); `good` <- v in C.
template <typename C, typename R>
__device__ __forceinline__ C project_sector(const C v, const bool inside, const int constrained, const R cc,
                                            const R sc, const R ch, const R sh, bool& good) {
    const R a = v.x * cc + v.y * sc;
    const R b = v.y * cc - v.x * sc;
    const R ab = b < (R)0 ? -b : b;
    const bool in_cone = (constrained == 0) || ((a * sh - ab * ch >= (R)0) && (a >= (R)0));
    R t = a * ch + ab * sh;
    t = t > (R)0 ? t : (R)0;
    const R tch = t * ch;
    const R tsh = b >= (R)0 ? t * sh : -(t * sh);
    const C edge = make_c<C, R>(tch * cc - tsh * sc, tch * sc + tsh * cc);
    good = inside && in_cone;
    const C p = in_cone ? v : edge;
    return inside ? p : make_c<C, R>((R)0, (R)0);
}

template <typename C, typename R>
__device__ void phase_complex_impl(const int mode, C* __restrict__ buf, const R* __restrict__ wsup, C* __restrict__ u,
                                   C* __restrict__ image, const int write_image, const R beta, const long long npix,
                                   const long long wsup_stride, const int constrained, const R cc, const R sc,
                                   const R ch, const R sh) {
    const long long run_off = (long long)blockIdx.y * npix;
    const R* __restrict__ wrun = wsup + (long long)blockIdx.y * wsup_stride;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
        const long long i = run_off + p;
        const R ws = __ldg(&wrun[p]);
        const bool inside = ws < (R)0;
        const C x = buf[i];
        bool good;
        const C px = project_sector<C, R>(x, inside, constrained, cc, sc, ch, sh, good);
        if (mode == 0) {
            const R w = inside ? -ws : ws;
            buf[i] = make_c<C, R>(w * (x.x - px.x), w * (x.y - px.y));
            continue;
        }
        if (mode == 5) {
            const R w = good ? (R)0 : (inside ? -ws : ws);
            buf[i] = make_c<C, R>(w * x.x, w * x.y);
            continue;
        }
        if (write_image) image[i] = px;
        C un;
        if (mode == 1) {
            un = px;
        } else if (mode == 2) {
            const C ui = u[i];
            un = good ? x : make_c<C, R>(ui.x - beta * x.x, ui.y - beta * x.y);
            u[i] = un;
        } else if (mode == 3) {
            const C ui = u[i];
            const C h = make_c<C, R>(ui.x - beta * x.x, ui.y - beta * x.y);
            u[i] = good ? x : h;
            un = h;
        } else {
            un = inside ? u[i] : x;
            u[i] = un;
        }
        buf[i] = un;
    }
}

extern "C" __global__ void phase_complex_c64(const int mode, float2* __restrict__ buf, const float* __restrict__ wsup,
                                             float2* __restrict__ u, float2* __restrict__ image, const int write_image,
                                             const float beta, const long long npix, const long long wsup_stride,
                                             const int constrained, const float cc, const float sc, const float ch,
                                             const float sh) {
    phase_complex_impl<float2, float>(mode, buf, wsup, u, image, write_image, beta, npix, wsup_stride, constrained,
                                      cc, sc, ch, sh);
}

extern "C" __global__ void phase_complex_c128(const int mode, double2* __restrict__ buf,
                                              const double* __restrict__ wsup, double2* __restrict__ u,
                                              double2* __restrict__ image, const int write_image, const double beta,
                                              const long long npix, const long long wsup_stride,
                                              const int constrained, const double cc, const double sc,
                                              const double ch, const double sh) {
    phase_complex_impl<double2, double>(mode, buf, wsup, u, image, write_image, beta, npix, wsup_stride,
                                        constrained, cc, sc, ch, sh);
}
