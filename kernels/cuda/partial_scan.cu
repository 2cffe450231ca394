// Batched partial-scan formation on the GPU (spec: ../shared/specs/partial_scan.md, steps 1-4).
// Semantics: fastem/scan/_reference.py; CPU twin: kernels/_partial_scan_numba.py.
//
//  image_minmax_*     one block per image: min/max with NaN/Inf read as 0
//  normalise_blur_*   one thread per output pixel: dihedral transform, [-1,1] normalisation and
//                     the 5x5 Gaussian (sigma 2.5 px, reflect padding) of the normalised image
//  detect_column_pass one thread per pixel: det = m (m img + 2 (1-m) U blur) on sampled pixels,
//                     and the nearest sampled row in the pixel's column (upper row wins a tie)
//  row_pass_fill      one thread per pixel: exact nearest sampled pixel by an outward search
//                     along the row over the column-pass distances, stopped once d^2 exceeds the
//                     best squared distance (ties: smaller column, then smaller row -- the same
//                     pixel as the CPU's Felzenszwalb-Huttenlocher pass); fills unsampled pixels.
#include "hash_rng.cuh"

__device__ __forceinline__ int reflect_index(int i, const int n) {
    const int period = 2 * n;
    i %= period;
    if (i < 0) i += period;
    return i >= n ? period - 1 - i : i;
}

template <typename T>
__device__ __forceinline__ double clean(const T v) {
    const double d = (double)v;
    return isfinite(d) ? d : 0.0;
}

template <typename T>
__device__ void minmax_impl(const T* __restrict__ images, const long long npix, double* __restrict__ minmax) {
    __shared__ double s_lo[256], s_hi[256];
    const T* x = images + (long long)blockIdx.x * npix;
    double lo = 1.0 / 0.0, hi = -1.0 / 0.0;
    for (long long i = threadIdx.x; i < npix; i += blockDim.x) {
        const double v = clean(x[i]);
        lo = fmin(lo, v);
        hi = fmax(hi, v);
    }
    s_lo[threadIdx.x] = lo;
    s_hi[threadIdx.x] = hi;
    __syncthreads();
    for (int step = blockDim.x / 2; step > 0; step >>= 1) {
        if (threadIdx.x < step) {
            s_lo[threadIdx.x] = fmin(s_lo[threadIdx.x], s_lo[threadIdx.x + step]);
            s_hi[threadIdx.x] = fmax(s_hi[threadIdx.x], s_hi[threadIdx.x + step]);
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        minmax[2 * blockIdx.x] = s_lo[0];
        minmax[2 * blockIdx.x + 1] = s_hi[0];
    }
}

// blockDim.x must be 256
extern "C" __global__ void image_minmax_f32(const float* __restrict__ images, const long long npix, double* __restrict__ minmax) {
    minmax_impl<float>(images, npix, minmax);
}
extern "C" __global__ void image_minmax_f64(const double* __restrict__ images, const long long npix, double* __restrict__ minmax) {
    minmax_impl<double>(images, npix, minmax);
}

template <typename T>
__device__ __forceinline__ float load_normalised(const T* __restrict__ x, int r, int c, const int ho, const int wo,
                                                 const int win, const int t, const double lo, const double scale) {
    int a = (t & 1) ? ho - 1 - r : r;
    int b = (t & 2) ? wo - 1 - c : c;
    const long long src = (t & 4) ? (long long)b * win + a : (long long)a * win + b;
    return (float)((clean(x[src]) - lo) * scale - 1.0);
}

// grid: (ceil(ho*wo / blockDim.x), batch); images (B, hin, win) -> img, blur (B, ho, wo)
template <typename T>
__device__ void normalise_blur_impl(const T* __restrict__ images, const double* __restrict__ minmax, float* __restrict__ img,
                                    float* __restrict__ blur, const float* __restrict__ weights, const int hin, const int win,
                                    const int ho, const int wo, const unsigned long long seed, const long long example_base,
                                    const int augment, const double near_constant) {
    const int b = blockIdx.y;
    const long long npix = (long long)ho * wo;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= npix) return;
    const int r = (int)(p / wo), c = (int)(p % wo);
    const long long o = (long long)b * npix + p;
    const double lo = minmax[2 * b], span = minmax[2 * b + 1] - lo;
    if (span < near_constant) {
        img[o] = 0.0f;
        blur[o] = 0.0f;
        return;
    }
    const double scale = 2.0 / span;
    const int t = augment ? rng_dihedral_index(seed, (unsigned long long)(example_base + b)) : 0;
    const T* x = images + (long long)b * hin * win;
    img[o] = load_normalised(x, r, c, ho, wo, win, t, lo, scale);
    float acc = 0.0f;
    for (int i = 0; i < 5; ++i) {
        const int rr = reflect_index(r + i - 2, ho);
        float row = 0.0f;
        for (int j = 0; j < 5; ++j) row += weights[j] * load_normalised(x, rr, reflect_index(c + j - 2, wo), ho, wo, win, t, lo, scale);
        acc += weights[i] * row;
    }
    blur[o] = acc;
}

extern "C" __global__ void normalise_blur_f32(const float* __restrict__ images, const double* __restrict__ minmax, float* __restrict__ img,
                                              float* __restrict__ blur, const float* __restrict__ weights, const int hin, const int win,
                                              const int ho, const int wo, const unsigned long long seed, const long long example_base,
                                              const int augment, const double near_constant) {
    normalise_blur_impl<float>(images, minmax, img, blur, weights, hin, win, ho, wo, seed, example_base, augment, near_constant);
}
extern "C" __global__ void normalise_blur_f64(const double* __restrict__ images, const double* __restrict__ minmax, float* __restrict__ img,
                                              float* __restrict__ blur, const float* __restrict__ weights, const int hin, const int win,
                                              const int ho, const int wo, const unsigned long long seed, const long long example_base,
                                              const int augment, const double near_constant) {
    normalise_blur_impl<double>(images, minmax, img, blur, weights, hin, win, ho, wo, seed, example_base, augment, near_constant);
}

// grid: (ceil(h*w / blockDim.x), batch)
extern "C" __global__ void detect_column_pass(const float* __restrict__ path, int* __restrict__ near_row,
                                              const float* __restrict__ img, const float* __restrict__ blur,
                                              float* __restrict__ partial, const int h, const int w,
                                              const unsigned long long seed, const long long example_base, const int with_det) {
    const int b = blockIdx.y;
    const long long npix = (long long)h * w;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= npix) return;
    const int r = (int)(p / w), c = (int)(p % w);
    const float* m = path + (long long)b * npix;
    const long long o = (long long)b * npix + p;
    const float mv = m[p];
    if (with_det && mv > 0.0f) {
        const unsigned long long key = rng_stream_key(seed, (unsigned long long)(example_base + b), RNG_NOISE);
        const float u = rng_uniform32(key, (unsigned long long)p);
        partial[o] = mv * (mv * img[o] + 2.0f * (1.0f - mv) * u * blur[o]);
    }
    int found = -1;
    for (int d = 0; r - d >= 0 || r + d < h; ++d) {
        if (r - d >= 0 && m[(long long)(r - d) * w + c] > 0.0f) { found = r - d; break; }
        if (d > 0 && r + d < h && m[(long long)(r + d) * w + c] > 0.0f) { found = r + d; break; }
    }
    near_row[o] = found;
}

// grid: (ceil(h*w / blockDim.x), batch)
extern "C" __global__ void row_pass_fill(const float* __restrict__ path, const int* __restrict__ near_row,
                                         float* __restrict__ partial, int* __restrict__ nearest, const int h, const int w,
                                         const int with_values) {
    const int b = blockIdx.y;
    const long long npix = (long long)h * w;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= npix) return;
    const int r = (int)(p / w), c = (int)(p % w);
    const int* nr = near_row + (long long)b * npix + (long long)r * w;
    long long best = -1;
    int bq = -1;
    for (int d = 0; c - d >= 0 || c + d < w; ++d) {
        const long long dd = (long long)d * d;
        if (best >= 0 && dd > best) break;
        int q = c - d;
        if (q >= 0 && nr[q] >= 0) {
            const long long cost = (long long)(r - nr[q]) * (r - nr[q]) + dd;
            if (best < 0 || cost <= best) { best = cost; bq = q; }
        }
        q = c + d;
        if (d > 0 && q < w && nr[q] >= 0) {
            const long long cost = (long long)(r - nr[q]) * (r - nr[q]) + dd;
            if (best < 0 || cost < best) { best = cost; bq = q; }
        }
    }
    const long long o = (long long)b * npix + p;
    if (bq < 0) {
        nearest[o] = -1;
        if (with_values) partial[o] = 0.0f;
        return;
    }
    const long long src = (long long)nr[bq] * w + bq;
    nearest[o] = (int)src;
    if (with_values && !(path[o] > 0.0f)) partial[o] = partial[(long long)b * npix + src];
}
