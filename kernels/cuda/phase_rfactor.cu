// R-factor helpers of the phase-retrieval engine (see kernels/phase_rfactor.py).
//   hermitian_half: half[r,a,b,c] = half_scale * (z[r,a,b,c] + conj(z[r,-a,-b,-c])), c <= nc/2
//   rfactor_half:   out[r] += sum_k (bh[k] >= 0 ? | |F| - bh | : 0) + (bm[k] >= 0 ? | |F| - bm | : 0)
// Launch: grid (x: element blocks, y: run). out must hold 0 before rfactor_half.
#include "common.cuh"

template <typename C, typename R>
__device__ void hermitian_half_impl(const C* __restrict__ z, C* __restrict__ half, const long long na,
                                    const long long nb, const long long nc, const R half_scale) {
    const long long nh = nc / 2 + 1;
    const long long nhalf = na * nb * nh;
    const long long npix = na * nb * nc;
    const long long r = blockIdx.y;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x; q < nhalf; q += stride) {
        const long long c = q % nh;
        const long long ab = q / nh;
        const long long a = ab / nb;
        const long long b = ab - a * nb;
        const long long ma = (na - a) % na, mb = (nb - b) % nb, mc = (nc - c) % nc;
        const C v = z[r * npix + (a * nb + b) * nc + c];
        const C m = z[r * npix + (ma * nb + mb) * nc + mc];
        C o;
        o.x = half_scale * (v.x + m.x);
        o.y = half_scale * (v.y - m.y);
        half[r * nhalf + q] = o;
    }
}

template <typename C, typename R>
__device__ void rfactor_half_impl(const C* __restrict__ spec, const R* __restrict__ bh, const R* __restrict__ bm,
                                  double* __restrict__ out, const long long npix) {
    const long long off = (long long)blockIdx.y * npix;
    const long long stride = (long long)blockDim.x * gridDim.x;
    double acc = 0.0;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < npix; p += stride) {
        const C v = spec[off + p];
        const double mag = sqrt((double)v.x * (double)v.x + (double)v.y * (double)v.y);
        const R b1 = __ldg(&bh[p]);
        const R b2 = __ldg(&bm[p]);
        if (b1 >= (R)0) acc += fabs(mag - (double)b1);
        if (b2 >= (R)0) acc += fabs(mag - (double)b2);
    }
    acc = block_reduce_sum(acc);
    if (threadIdx.x == 0) atomicAdd(&out[blockIdx.y], acc);
}

extern "C" __global__ void hermitian_half_c64(const float2* __restrict__ z, float2* __restrict__ half,
                                              const long long na, const long long nb, const long long nc,
                                              const float half_scale) {
    hermitian_half_impl<float2, float>(z, half, na, nb, nc, half_scale);
}

extern "C" __global__ void hermitian_half_c128(const double2* __restrict__ z, double2* __restrict__ half,
                                               const long long na, const long long nb, const long long nc,
                                               const double half_scale) {
    hermitian_half_impl<double2, double>(z, half, na, nb, nc, half_scale);
}

extern "C" __global__ void rfactor_half_c64(const float2* __restrict__ spec, const float* __restrict__ bh,
                                            const float* __restrict__ bm, double* __restrict__ out,
                                            const long long npix) {
    rfactor_half_impl<float2, float>(spec, bh, bm, out, npix);
}

extern "C" __global__ void rfactor_half_c128(const double2* __restrict__ spec, const double* __restrict__ bh,
                                             const double* __restrict__ bm, double* __restrict__ out,
                                             const long long npix) {
    rfactor_half_impl<double2, double>(spec, bh, bm, out, npix);
}
