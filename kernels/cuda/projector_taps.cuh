// Helpers shared by the projector kernels (see kernels/back_project.py, SUBPOINT_OFFSETS).
// A voxel is divided into SUB sub-points in object space: SUB == 1: its centre; SUB == 4: the
// 2 x 2 sub-pixels of the x-z plane at (+-1/4, 0, +-1/4). Each sub-point lands on the detector at
// (u, v) + (c_u . d, c_v . d) and is spread bilinearly (2 x 2 taps), weight 1/SUB.
#pragma once

template <int SUB>
__device__ __forceinline__ void subpoint_offset(int s, float& dx, float& dz) {
    if (SUB == 1) {
        dx = 0.0f;
        dz = 0.0f;
    } else {
        dx = (s < 2) ? -0.25f : 0.25f;
        dz = (s % 2 == 0) ? -0.25f : 0.25f;
    }
}

// Bilinear taps of coordinate s: pixels i0, i0 + 1 with weights 1 - f, f.
__device__ __forceinline__ void bilinear_taps(float s, int& i0, float& f) {
    const float fl = floorf(s);
    i0 = (int)fl;
    f = s - fl;
}

// Projection coefficients (n, 2, 4) float64 staged as float in shared memory, 8 per projection:
// u = c[0]*ix + c[1]*iy + c[2]*iz + c[3], v = c[4]*ix + c[5]*iy + c[6]*iz + c[7].
#define FASTEM_PROJ_CHUNK 256
