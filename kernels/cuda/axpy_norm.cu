// Fused complex axpy and squared norm:  y <- a * x + y ;  out[0] += sum |y|^2
// (the example kernel of fastem's build path; see kernels/axpy_norm.py for the public function)
#include "common.cuh"

template <typename C>
__device__ void axpy_norm_impl(const C a, const C* __restrict__ x, C* __restrict__ y,
                               const long long n, double* __restrict__ out) {
    double acc = 0.0;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const C v = cadd(cmul(a, __ldg(&x[i])), y[i]);
        y[i] = v;
        acc += (double)cabs2(v);
    }
    acc = block_reduce_sum(acc);
    if (threadIdx.x == 0) atomicAdd(out, acc);
}

extern "C" __global__ void axpy_norm_c64(const float2 a, const float2* __restrict__ x, float2* __restrict__ y,
                                         const long long n, double* __restrict__ out) {
    axpy_norm_impl<float2>(a, x, y, n, out);
}

extern "C" __global__ void axpy_norm_c128(const double2 a, const double2* __restrict__ x, double2* __restrict__ y,
                                          const long long n, double* __restrict__ out) {
    axpy_norm_impl<double2>(a, x, y, n, out);
}
