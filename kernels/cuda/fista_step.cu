// FISTA's vector updates, fused (kernels/fista_step.py):
//   fista_extrapolate:  y = (x - x_prev) * m + x
//   fista_update:       x_new = P(y - step * g) (positivity, support) written into g;
//                       x_prev = x;  out[0] += sum (y - x_new) * (x_new - x)   (float64)
// Products and sums are rounded one by one (__f*_rn / __d*_rn: no FMA contraction), so every
// element matches the NumPy engine bit for bit.
#include "common.cuh"

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

template <typename T>
__device__ void extrapolate_impl(const T* __restrict__ x, const T* __restrict__ x_prev, T* __restrict__ y,
                                 const T m, const long long n) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T xi = x[i];
        y[i] = add_rn(mul_rn(sub_rn(xi, x_prev[i]), m), xi);
    }
}

template <typename T>
__device__ void update_impl(const T* __restrict__ y, T* __restrict__ g, const T* __restrict__ x,
                            T* __restrict__ x_prev, const T* __restrict__ support, const int has_support,
                            const int positivity, const T neg_step, const long long n, double* __restrict__ out) {
    double acc = 0.0;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T yi = y[i], xi = x[i];
        T xn = add_rn(mul_rn(g[i], neg_step), yi);
        if (positivity && xn < (T)0) xn = (T)0;          // NaN stays NaN (the divergence check sees it)
        if (has_support) xn = mul_rn(xn, support[i]);
        acc += ((double)yi - (double)xn) * ((double)xn - (double)xi);
        g[i] = xn;
        x_prev[i] = xi;
    }
    acc = block_reduce_sum(acc);
    if (threadIdx.x == 0) atomicAdd(out, acc);
}

extern "C" __global__ void fista_extrapolate_f32(const float* __restrict__ x, const float* __restrict__ x_prev,
                                                 float* __restrict__ y, const float m, const long long n) {
    extrapolate_impl<float>(x, x_prev, y, m, n);
}

extern "C" __global__ void fista_extrapolate_f64(const double* __restrict__ x, const double* __restrict__ x_prev,
                                                 double* __restrict__ y, const double m, const long long n) {
    extrapolate_impl<double>(x, x_prev, y, m, n);
}

extern "C" __global__ void fista_update_f32(const float* __restrict__ y, float* __restrict__ g,
                                           const float* __restrict__ x, float* __restrict__ x_prev,
                                           const float* __restrict__ support, const int has_support,
                                           const int positivity, const float neg_step, const long long n,
                                           double* __restrict__ out) {
    update_impl<float>(y, g, x, x_prev, support, has_support, positivity, neg_step, n, out);
}

extern "C" __global__ void fista_update_f64(const double* __restrict__ y, double* __restrict__ g,
                                           const double* __restrict__ x, double* __restrict__ x_prev,
                                           const double* __restrict__ support, const int has_support,
                                           const int positivity, const double neg_step, const long long n,
                                           double* __restrict__ out) {
    update_impl<double>(y, g, x, x_prev, support, has_support, positivity, neg_step, n, out);
}
