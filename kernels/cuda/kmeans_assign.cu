// k-means mini-batch assignment fused with per-centroid accumulation (see kernels/kmeans_assign.py).
//
// Inputs: X (M, d) row-major, crossT (K, M) = C @ X^T from cuBLAS (CuPy), cnorm (K,) = ||C_k||^2,
// C (K, d). One thread per point (grid-stride): argmin_k (cnorm[k] - 2 crossT[k, i]) with ties to
// the lowest index (reads of crossT are coalesced across the warp), then the exact float64 squared
// distance to the chosen centroid, then (when accumulate != 0) float64 atomic adds of the point
// into sums (K, d) and of 1 into counts (K,).
#include "common.cuh"

template <typename T>
__device__ void argmin_accumulate_impl(const T* __restrict__ X, const T* __restrict__ crossT,
                                       const T* __restrict__ cnorm, const T* __restrict__ C,
                                       const long long M, const int d, const int K,
                                       long long* __restrict__ labels, double* __restrict__ dist,
                                       double* __restrict__ sums, unsigned long long* __restrict__ counts,
                                       const int accumulate) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < M; i += stride) {
        int best = 0;
        T bv = cnorm[0] - (T)2 * crossT[i];
        for (int k = 1; k < K; ++k) {
            const T v = cnorm[k] - (T)2 * crossT[(long long)k * M + i];
            if (v < bv) { bv = v; best = k; }
        }
        labels[i] = best;
        const T* __restrict__ xi = X + i * d;
        const T* __restrict__ cb = C + (long long)best * d;
        double acc = 0.0;
        for (int j = 0; j < d; ++j) {
            const double diff = (double)xi[j] - (double)cb[j];
            acc += diff * diff;
        }
        dist[i] = acc;
        if (accumulate) {
            atomicAdd(&counts[best], 1ULL);
            double* __restrict__ sb = sums + (long long)best * d;
            for (int j = 0; j < d; ++j) atomicAdd(&sb[j], (double)xi[j]);
        }
    }
}

extern "C" __global__ void kmeans_argmin_accumulate_f32(const float* __restrict__ X, const float* __restrict__ crossT,
                                                        const float* __restrict__ cnorm, const float* __restrict__ C,
                                                        const long long M, const int d, const int K,
                                                        long long* __restrict__ labels, double* __restrict__ dist,
                                                        double* __restrict__ sums,
                                                        unsigned long long* __restrict__ counts, const int accumulate) {
    argmin_accumulate_impl<float>(X, crossT, cnorm, C, M, d, K, labels, dist, sums, counts, accumulate);
}

extern "C" __global__ void kmeans_argmin_accumulate_f64(const double* __restrict__ X, const double* __restrict__ crossT,
                                                        const double* __restrict__ cnorm, const double* __restrict__ C,
                                                        const long long M, const int d, const int K,
                                                        long long* __restrict__ labels, double* __restrict__ dist,
                                                        double* __restrict__ sums,
                                                        unsigned long long* __restrict__ counts, const int accumulate) {
    argmin_accumulate_impl<double>(X, crossT, cnorm, C, M, d, K, labels, dist, sums, counts, accumulate);
}
