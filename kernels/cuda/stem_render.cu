// Synthetic HAADF-STEM rendering: Gaussian atom columns (cell list) seen through scan-line jitter
// and drift, on a bilinear carbon-film background. One thread per pixel; CPU twin and the meaning of
// every argument: kernels/_stem_render_numba.py.
extern "C" __global__ void stem_render(float* __restrict__ out, const int h, const int w,
                                       const float* __restrict__ ax, const float* __restrict__ ay,
                                       const float* __restrict__ amp, const float* __restrict__ inv2s2,
                                       const float* __restrict__ cutoff2, const long long* __restrict__ cell_start,
                                       const double* __restrict__ meta, const float* __restrict__ jitter,
                                       const double* __restrict__ drift, const float* __restrict__ bg,
                                       const int bgh, const int bgw, const double bg_step) {
    const int b = blockIdx.y;
    const long long npix = (long long)h * w;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= npix) return;
    const int r = (int)(p / w), c = (int)(p % w);
    const double* m = meta + 7 * b;
    const long long aoff = (long long)m[0], coff = (long long)m[1];
    const int ncx = (int)m[2], ncy = (int)m[3];
    const double x0 = m[4], y0 = m[5], cell = m[6];
    const double tt = (double)(r * (long long)w + c) / (double)npix;
    const double xs = c + jitter[(long long)b * h + r] + drift[2 * b] * tt;
    const double ys = r + drift[2 * b + 1] * tt;
    const double gy = r / bg_step, gx = c / bg_step;
    const int iy = min((int)gy, bgh - 2), ix = min((int)gx, bgw - 2);
    const double fy = gy - iy, fx = gx - ix;
    const float* g = bg + (long long)b * bgh * bgw;
    double acc = (1 - fy) * ((1 - fx) * g[iy * bgw + ix] + fx * g[iy * bgw + ix + 1])
               + fy * ((1 - fx) * g[(iy + 1) * bgw + ix] + fx * g[(iy + 1) * bgw + ix + 1]);
    const int cx = (int)floor((xs - x0) / cell), cy = (int)floor((ys - y0) / cell);
    for (int jy = max(cy - 1, 0); jy < min(cy + 2, ncy); ++jy) {
        for (int jx = max(cx - 1, 0); jx < min(cx + 2, ncx); ++jx) {
            const long long k = coff + (long long)jy * ncx + jx;
            for (long long a = cell_start[k]; a < cell_start[k + 1]; ++a) {
                const long long i = aoff + a;
                const float dx = (float)(xs - ax[i]), dy = (float)(ys - ay[i]);
                const float d2 = dx * dx + dy * dy;
                if (d2 < cutoff2[i]) acc += amp[i] * expf(-d2 * inv2s2[i]);
            }
        }
    }
    out[(long long)b * npix + p] = (float)acc;
}
