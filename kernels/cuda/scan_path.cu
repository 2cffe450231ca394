// Scan-path dwell maps (1-px lines, nearer pixel or anti-aliased): Archimedean spiral and jittered grid (random walks + transpose).
// Semantics: fastem/scan/_reference.py (spiral_dwell, grid_dwell); CPU twin: kernels/_scan_path_numba.py.
// Deposits from different segments/channels can hit the same pixel: float atomicAdd, then dwell_finish.
#include "hash_rng.cuh"

#define MIN_DWELL 1e-3f

__device__ __forceinline__ void add_px(float* img, int h, int w, int r, int c, double v) {
    if (v != 0.0 && r >= 0 && r < h && c >= 0 && c < w) atomicAdd(&img[(long long)r * w + c], (float)v);
}

struct SpiralParams { double k, phi, cx, cy, theta_max; long long steps; };

__device__ SpiralParams spiral_params(int h, int w, double spacing, unsigned long long seed, long long example,
                                      int rotate, double max_offset) {
    const unsigned long long key = rng_stream_key(seed, (unsigned long long)example, RNG_SPIRAL);
    const double u0 = rng_uniform64(key, 0ULL), u1 = rng_uniform64(key, 1ULL), u2 = rng_uniform64(key, 2ULL);
    SpiralParams p;
    p.phi = rotate ? 6.283185307179586 * u0 : 0.0;
    p.cx = 0.5 * (w - 1) + (2.0 * u1 - 1.0) * max_offset;
    p.cy = 0.5 * (h - 1) + (2.0 * u2 - 1.0) * max_offset;
    const double ex = fmax(p.cx, w - 1 - p.cx), ey = fmax(p.cy, h - 1 - p.cy);
    const double r_max = sqrt(ex * ex + ey * ey) + 2.0;
    p.k = spacing / 6.283185307179586;
    p.theta_max = r_max / p.k;
    const long long s = (long long)ceil(3.141592653589793 * r_max * r_max / spacing);
    p.steps = s > 10000 ? s : 10000;
    return p;
}

// one thread per segment (grid-stride), blockIdx.y = example
extern "C" __global__ void spiral_deposit(float* __restrict__ out, const int h, const int w, const double spacing,
                                          const unsigned long long seed, const long long example_base,
                                          const int rotate, const double max_offset, const int antialias) {
    const int b = blockIdx.y;
    float* img = out + (long long)b * h * w;
    const SpiralParams p = spiral_params(h, w, spacing, seed, example_base + b, rotate, max_offset);
    const double dtheta = p.theta_max / p.steps;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.steps; i += (long long)gridDim.x * blockDim.x) {
        const double t0 = i * dtheta, t1 = (i + 1) * dtheta;
        const double x0 = i == 0 ? p.cx : p.cx + p.k * t0 * cos(t0 + p.phi);
        const double y0 = i == 0 ? p.cy : p.cy + p.k * t0 * sin(t0 + p.phi);
        const double x1 = p.cx + p.k * t1 * cos(t1 + p.phi), y1 = p.cy + p.k * t1 * sin(t1 + p.phi);
        // major axis a (swap: a is the row axis), minor axis b
        const bool swap = fabs(x1 - x0) < fabs(y1 - y0);
        const double a0 = swap ? y0 : x0, b0 = swap ? x0 : y0, a1 = swap ? y1 : x1, b1 = swap ? x1 : y1;
        const double da = a1 - a0;
        if (da == 0.0) continue;
        const long long start = da > 0 ? (long long)ceil(a0) : (long long)floor(a1) + 1;
        const long long stop = da > 0 ? (long long)ceil(a1) : (long long)floor(a0) + 1;
        const double slope = (b1 - b0) / da;
        for (long long A = start; A < stop; ++A) {
            const double bv = b0 + (A - a0) * slope, bf = floor(bv), f = bv - bf;
            const int B = (int)bf;
            const double w0 = antialias ? 1.0 - f : (f < 0.5 ? 1.0 : 0.0);
            const double w1 = antialias ? f : 1.0 - w0;
            if (swap) {
                add_px(img, h, w, (int)A, B, w0);
                add_px(img, h, w, (int)A, B + 1, w1);
            } else {
                add_px(img, h, w, B, (int)A, w0);
                add_px(img, h, w, B + 1, (int)A, w1);
            }
        }
    }
}

__device__ __forceinline__ void grid_add(float* img, int h, int w, int r, int c, double v, bool fy, bool fx) {
    if (v != 0.0 && r >= 0 && r < h && c >= 0 && c < w) {
        if (fy) r = h - 1 - r;
        if (fx) c = w - 1 - c;
        atomicAdd(&img[(long long)r * w + c], (float)v);
    }
}

// one thread per channel, blockIdx.y = example
extern "C" __global__ void grid_walk(float* __restrict__ out, const int h, const int w, const double width,
                                     const double amp, const unsigned long long seed, const long long example_base,
                                     const int random_place, const int antialias) {
    const int b = blockIdx.y;
    const long long example = example_base + b;
    float* img = out + (long long)b * h * w;
    const int n = h > w ? h : w;
    const int canvas = (int)(1.2 * n);
    int oy, ox;
    bool fy = false, fx = false;
    if (random_place) {
        const unsigned long long pk = rng_stream_key(seed, (unsigned long long)example, RNG_GRID_PLACE);
        oy = (int)(rng_uniform64(pk, 0ULL) * (canvas - h + 1));
        ox = (int)(rng_uniform64(pk, 1ULL) * (canvas - w + 1));
        fy = rng_uniform64(pk, 2ULL) < 0.5;
        fx = rng_uniform64(pk, 3ULL) < 0.5;
    } else {
        oy = ox = (int)(0.1 * n);
    }
    const int nch = (int)ceil(canvas / width);
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= nch) return;
    const double half = 0.5 * (width - 1.0);
    const int steps = (int)ceil(5.0 * amp);
    const unsigned long long key = rng_stream_key(seed, (unsigned long long)example, RNG_GRID_WALK);
    const double centre = j * width + half;
    double y = 0.0, mom = 0.0;
    for (int i = 0; i < canvas; ++i) {
        const unsigned long long base = (unsigned long long)((long long)j * canvas + i) * 3ULL;
        const double ustep = rng_uniform64(key, base);
        const double nrm = rng_normal64(key, base + 1ULL, base + 2ULL);
        const double y1 = y;
        if (ustep < 0.5) {
            mom = 0.5 * mom + 0.5 * amp * (1.0 + nrm);
            y = y + mom;
        } else {
            y = amp * (nrm - 1.0);
        }
        if (y < -half) { y = -half; mom = -mom; }
        else if (y > half) { y = half; mom = -mom; }
        const double dy = y - y1;
        const double scale = sqrt(1.0 + dy * dy) / steps;
        for (int s = 1; s <= steps; ++s) {
            const double row = centre + y1 + dy * ((double)s / steps);
            const double rf = floor(row), f = row - rf;
            const int ri = (int)rf;
            const double w0 = antialias ? (1.0 - f) * scale : (f < 0.5 ? 1.0 : 0.0);
            const double w1 = antialias ? f * scale : 1.0 - w0;
            grid_add(img, h, w, ri - oy, i - ox, w0, fy, fx);
            grid_add(img, h, w, ri + 1 - oy, i - ox, w1, fy, fx);
            grid_add(img, h, w, i - oy, ri - ox, w0, fy, fx);
            grid_add(img, h, w, i - oy, ri + 1 - ox, w1, fy, fx);
        }
    }
}

// clip to [0, 1] and drop dwell below MIN_DWELL
extern "C" __global__ void dwell_finish(float* __restrict__ out, const long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float v = out[i];
        out[i] = v > 1.0f ? 1.0f : (v < MIN_DWELL ? 0.0f : v);
    }
}
