// Fused per-example losses with adaptive learning rate clipping (ALRC); see kernels/alrc_loss.py.
//
// Arrays are (B, P) row-major: B examples of P pixels. Loss codes: 0 MSE, 1 Huberised MSE,
// 2 quartic error, 3 mean absolute error. Everything accumulates in double.
//   alrc_sums_*     grid (bx, by), block 256: sums[b] += sum_p w_p e(d_bp)  (sums zeroed before)
//   alrc_finalize   grid 1, block 256: losses, clip factors, gradient scales, mean, moment update
//                   (moments = [mu1, mu2] stay on the device: no host synchronisation)
//   alrc_grad_*     grid (bx, by), block 256: grad_bp = gout[0] * gscale[b] * w_p e'(d_bp)
#include "common.cuh"

__device__ __forceinline__ double alrc_e(double d, int kind) {
    if (kind == 2) { const double d2 = d * d; return d2 * d2; }
    if (kind == 3) return fabs(d);
    return d * d;
}

__device__ __forceinline__ double alrc_de(double d, int kind) {
    if (kind == 2) return 4.0 * d * d * d;
    if (kind == 3) return (d > 0.0) ? 1.0 : ((d < 0.0) ? -1.0 : 0.0);
    return 2.0 * d;
}

template <typename T>
__device__ void alrc_sums_impl(const T* __restrict__ pred, const T* __restrict__ target,
                               const T* __restrict__ weight, const int has_weight, const long long w_per_example,
                               const int kind, const long long nb, const long long npix,
                               double* __restrict__ sums) {
    for (long long b = blockIdx.y; b < nb; b += gridDim.y) {
        const T* p = pred + b * npix;
        const T* t = target + b * npix;
        const T* w = weight + (w_per_example ? b * npix : 0);
        double acc = 0.0;
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < npix;
             i += (long long)blockDim.x * gridDim.x) {
            double e = alrc_e((double)__ldg(&p[i]) - (double)__ldg(&t[i]), kind);
            if (has_weight) e *= (double)__ldg(&w[i]);
            acc += e;
        }
        acc = block_reduce_sum(acc);
        if (threadIdx.x == 0) atomicAdd(&sums[b], acc);
        __syncthreads();  // block_reduce_sum's shared scratch is reused by the next example
    }
}

extern "C" __global__ void alrc_sums_f32(const float* __restrict__ pred, const float* __restrict__ target,
                                         const float* __restrict__ weight, const int has_weight,
                                         const long long w_per_example, const int kind, const long long nb,
                                         const long long npix, double* __restrict__ sums) {
    alrc_sums_impl<float>(pred, target, weight, has_weight, w_per_example, kind, nb, npix, sums);
}

extern "C" __global__ void alrc_sums_f64(const double* __restrict__ pred, const double* __restrict__ target,
                                         const double* __restrict__ weight, const int has_weight,
                                         const long long w_per_example, const int kind, const long long nb,
                                         const long long npix, double* __restrict__ sums) {
    alrc_sums_impl<double>(pred, target, weight, has_weight, w_per_example, kind, nb, npix, sums);
}

// One block. Reads the moments before anyone writes them; thread 0 writes them after the
// block reductions (which synchronise the block).
extern "C" __global__ void alrc_finalize(const double* __restrict__ sums, const long long nb, const long long npix,
                                         const int kind, const double scale, const double n, const double beta,
                                         const int clip, const int update, double* __restrict__ moments,
                                         double* __restrict__ losses, double* __restrict__ clipped,
                                         double* __restrict__ factor, double* __restrict__ gscale,
                                         double* __restrict__ mean, int* __restrict__ nonfinite) {
    const double mu1 = moments[0], mu2 = moments[1];
    double lmax = 0.0;
    if (clip) lmax = mu1 + n * sqrt(fmax(mu2 - mu1 * mu1, 0.0) + 1e-8);
    double s1 = 0.0, s2 = 0.0, bad = 0.0;
    for (long long b = threadIdx.x; b < nb; b += blockDim.x) {
        const double x = scale * sums[b] / (double)npix;
        double loss = x, hp = 1.0;
        if (kind == 1 && x > 1.0) { loss = sqrt(x); hp = 0.5 / loss; }
        if (!isfinite(loss)) bad += 1.0;
        const double f = (clip && loss > lmax) ? lmax / loss : 1.0;
        const double ld = f * loss;
        losses[b] = loss;
        clipped[b] = ld;
        factor[b] = f;
        gscale[b] = f * scale * hp / ((double)npix * (double)nb);
        s1 += ld;
        s2 += ld * ld;
    }
    s1 = block_reduce_sum(s1);
    __syncthreads();
    s2 = block_reduce_sum(s2);
    __syncthreads();
    bad = block_reduce_sum(bad);
    if (threadIdx.x == 0) {
        mean[0] = s1 / (double)nb;
        nonfinite[0] = (int)bad;
        if (clip && update && bad == 0.0) {
            moments[0] = beta * mu1 + (1.0 - beta) * (s1 / (double)nb);
            moments[1] = beta * mu2 + (1.0 - beta) * (s2 / (double)nb);
        }
    }
}

template <typename T>
__device__ void alrc_grad_impl(const T* __restrict__ pred, const T* __restrict__ target,
                               const T* __restrict__ weight, const int has_weight, const long long w_per_example,
                               const int kind, const long long nb, const long long npix,
                               const double* __restrict__ gscale, const double* __restrict__ gout,
                               T* __restrict__ grad) {
    const double g0 = gout[0];
    for (long long b = blockIdx.y; b < nb; b += gridDim.y) {
        const T* p = pred + b * npix;
        const T* t = target + b * npix;
        const T* w = weight + (w_per_example ? b * npix : 0);
        T* o = grad + b * npix;
        const double g = g0 * gscale[b];
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < npix;
             i += (long long)blockDim.x * gridDim.x) {
            double de = alrc_de((double)__ldg(&p[i]) - (double)__ldg(&t[i]), kind);
            if (has_weight) de *= (double)__ldg(&w[i]);
            o[i] = (T)(g * de);
        }
    }
}

extern "C" __global__ void alrc_grad_f32(const float* __restrict__ pred, const float* __restrict__ target,
                                         const float* __restrict__ weight, const int has_weight,
                                         const long long w_per_example, const int kind, const long long nb,
                                         const long long npix, const double* __restrict__ gscale,
                                         const double* __restrict__ gout, float* __restrict__ grad) {
    alrc_grad_impl<float>(pred, target, weight, has_weight, w_per_example, kind, nb, npix, gscale, gout, grad);
}

extern "C" __global__ void alrc_grad_f64(const double* __restrict__ pred, const double* __restrict__ target,
                                         const double* __restrict__ weight, const int has_weight,
                                         const long long w_per_example, const int kind, const long long nb,
                                         const long long npix, const double* __restrict__ gscale,
                                         const double* __restrict__ gout, double* __restrict__ grad) {
    alrc_grad_impl<double>(pred, target, weight, has_weight, w_per_example, kind, nb, npix, gscale, gout, grad);
}
