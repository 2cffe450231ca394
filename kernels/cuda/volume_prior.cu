// Convex edge-preserving priors on a 3D volume: value and gradient in one pass (gather form).
//   grad <- beta*grad + alpha*dR/dx ;  out[0] += R(x)
// kind 0 anisotropic TV (smoothed, eps = a), 1 isotropic TV (smoothed), 2 Huber (delta = a),
// 3 qGGMRF (p, q, T, sigma; 26 neighbours weighted 1/|offset|, normalised to sum 1).
// Same arithmetic as kernels/_volume_prior_common.py; public function: kernels/volume_prior.py.
#include "common.cuh"

#define VP_NORM (6.0 + 12.0 / 1.4142135623730951 + 8.0 / 1.7320508075688772)

__device__ __forceinline__ double vp_rho(int kind, double d, double a, double p, double q, double t, double s) {
    const double ad = fabs(d);
    if (kind == 0) return sqrt(d * d + a * a) - a;
    if (kind == 2) return ad <= a ? 0.5 * d * d : a * (ad - 0.5 * a);
    if (ad == 0.0) return 0.0;
    const double u = pow(ad / (t * s), q - p);
    return pow(ad, p) / (p * pow(s, p)) * u / (1.0 + u);
}

__device__ __forceinline__ double vp_drho(int kind, double d, double a, double p, double q, double t, double s) {
    if (kind == 0) return d / sqrt(d * d + a * a);
    if (kind == 2) return d > a ? a : (d < -a ? -a : d);
    const double ad = fabs(d);
    if (ad == 0.0) return 0.0;
    const double u = pow(ad / (t * s), q - p);
    const double g = pow(ad, p - 1.0) / (p * pow(s, p)) * u / (1.0 + u) * (p + (q - p) / (1.0 + u));
    return d > 0.0 ? g : -g;
}

// qGGMRF rho(|d|) and rho'(|d|) at ad > 0: one log, two exps; c0 = 1/(p sigma^p), lts = log(T sigma)
__device__ __forceinline__ void vp_qg_pair(double ad, double p, double q, double c0, double lts, double& r, double& dr) {
    const double lg = log(ad);
    const double u = exp((q - p) * (lg - lts));
    r = c0 * exp(p * lg) * u / (1.0 + u);
    dr = r * (p + (q - p) / (1.0 + u)) / ad;
}

template <typename T>
__device__ __forceinline__ void vp_diff3(const T* __restrict__ x, long long z, long long y, long long c, long long nz,
                                         long long ny, long long nx, double& dz, double& dy, double& dx) {
    const long long i = (z * ny + y) * nx + c;
    const double v = (double)x[i];
    dz = z + 1 < nz ? (double)x[i + ny * nx] - v : 0.0;
    dy = y + 1 < ny ? (double)x[i + nx] - v : 0.0;
    dx = c + 1 < nx ? (double)x[i + 1] - v : 0.0;
}

template <typename T>
__device__ void volume_prior_impl(const T* __restrict__ x, T* __restrict__ grad, const long long nz, const long long ny,
                                  const long long nx, const int kind, const double a, const double p, const double q,
                                  const double t, const double s, const double alpha, const double beta,
                                  double* __restrict__ out) {
    const double w_face = 1.0 / VP_NORM, w_edge = 1.0 / (1.4142135623730951 * VP_NORM),
                 w_corner = 1.0 / (1.7320508075688772 * VP_NORM);
    const long long n = nz * ny * nx;
    const long long stride = (long long)blockDim.x * gridDim.x;
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const long long c = i % nx, y = (i / nx) % ny, z = i / (nx * ny);
        double g = 0.0, val = 0.0;
        if (kind == 1) {
            double dz, dy, dx, ez, ey, ex;
            vp_diff3(x, z, y, c, nz, ny, nx, dz, dy, dx);
            const double nrm = sqrt(dz * dz + dy * dy + dx * dx + a * a);
            g = -(dz + dy + dx) / nrm;
            val = nrm - a;
            if (z > 0) { vp_diff3(x, z - 1, y, c, nz, ny, nx, ez, ey, ex); g += ez / sqrt(ez * ez + ey * ey + ex * ex + a * a); }
            if (y > 0) { vp_diff3(x, z, y - 1, c, nz, ny, nx, ez, ey, ex); g += ey / sqrt(ez * ez + ey * ey + ex * ex + a * a); }
            if (c > 0) { vp_diff3(x, z, y, c - 1, nz, ny, nx, ez, ey, ex); g += ex / sqrt(ez * ez + ey * ey + ex * ex + a * a); }
        } else {
            const double v = (double)x[i];
            const double c0 = kind == 3 ? 1.0 / (p * pow(s, p)) : 0.0, lts = kind == 3 ? log(t * s) : 0.0;
            for (int oz = -1; oz <= 1; ++oz) {
                const long long zz = z + oz;
                if (zz < 0 || zz >= nz) continue;
                for (int oy = -1; oy <= 1; ++oy) {
                    const long long yy = y + oy;
                    if (yy < 0 || yy >= ny) continue;
                    for (int ox = -1; ox <= 1; ++ox) {
                        const long long cc = c + ox;
                        if (cc < 0 || cc >= nx) continue;
                        const int m = abs(oz) + abs(oy) + abs(ox);
                        if (m == 0) continue;
                        double w;
                        if (kind != 3) {
                            if (m != 1) continue;
                            w = 1.0;
                        } else {
                            w = m == 1 ? w_face : (m == 2 ? w_edge : w_corner);
                        }
                        const double d = v - (double)x[(zz * ny + yy) * nx + cc];
                        const bool positive = oz > 0 || (oz == 0 && (oy > 0 || (oy == 0 && ox > 0)));
                        if (kind == 3) {
                            if (d != 0.0) {
                                double r, dr;
                                vp_qg_pair(fabs(d), p, q, c0, lts, r, dr);
                                g += d > 0.0 ? w * dr : -w * dr;
                                if (positive) val += w * r;
                            }
                            continue;
                        }
                        g += w * vp_drho(kind, d, a, p, q, t, s);
                        if (positive) val += w * vp_rho(kind, d, a, p, q, t, s);
                    }
                }
            }
        }
        grad[i] = beta == 0.0 ? (T)(alpha * g) : (T)(beta * (double)grad[i] + alpha * g);
        acc += val;
    }
    acc = block_reduce_sum(acc);
    if (threadIdx.x == 0) atomicAdd(out, acc);
}

extern "C" __global__ void volume_prior_f32(const float* __restrict__ x, float* __restrict__ grad, const long long nz,
                                            const long long ny, const long long nx, const int kind, const double a,
                                            const double p, const double q, const double t, const double s,
                                            const double alpha, const double beta, double* __restrict__ out) {
    volume_prior_impl<float>(x, grad, nz, ny, nx, kind, a, p, q, t, s, alpha, beta, out);
}

extern "C" __global__ void volume_prior_f64(const double* __restrict__ x, double* __restrict__ grad, const long long nz,
                                            const long long ny, const long long nx, const int kind, const double a,
                                            const double p, const double q, const double t, const double s,
                                            const double alpha, const double beta, double* __restrict__ out) {
    volume_prior_impl<double>(x, grad, nz, ny, nx, kind, a, p, q, t, s, alpha, beta, out);
}
