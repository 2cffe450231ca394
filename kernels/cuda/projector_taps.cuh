// Interpolation taps shared by the projector kernels (see kernels/_projector_taps_numba.py).
// A voxel at detector coordinate s spreads over pixels i0, i0+1, i0+2 with weights w0, w1, w2:
//   SUB == 1: bilinear at s;  SUB == 4: two sub-points at s -+ 1/4, each weighted 1/2.
#pragma once

template <int SUB>
__device__ __forceinline__ void axis_taps(float s, int& i0, float& w0, float& w1, float& w2) {
    if (SUB == 1) {
        const float fl = floorf(s);
        const float f = s - fl;
        i0 = (int)fl;
        w0 = 1.0f - f;
        w1 = f;
        w2 = 0.0f;
    } else {
        const float t = s - 0.25f;
        const float fl = floorf(t);
        const float f = t - fl;
        i0 = (int)fl;
        w0 = 0.5f * (1.0f - f + fmaxf(0.5f - f, 0.0f));
        w2 = 0.5f * fmaxf(f - 0.5f, 0.0f);
        w1 = 1.0f - w0 - w2;
    }
}

// Projection coefficients (n, 2, 4) float64 staged as float in shared memory, 8 per projection:
// u = c[0]*ix + c[1]*iy + c[2]*iz + c[3], v = c[4]*ix + c[5]*iy + c[6]*iz + c[7].
#define FASTEM_PROJ_CHUNK 256
