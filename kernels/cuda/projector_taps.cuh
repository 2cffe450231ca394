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

// The voxel of this thread (one voxel per thread, 1D grid): flat index idx, inside = idx < nz*ny*nx
// (the last block's tail threads are outside but still take part in stage_coeffs), and (ix, iy, iz)
// of a C-ordered (nz, ny, nx) volume.
struct VoxelThread {
    long long idx;
    bool inside;
    int ix, iy, iz;
};

__device__ __forceinline__ VoxelThread voxel_thread(int nz, int ny, int nx) {
    VoxelThread t;
    t.idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    t.inside = t.idx < (long long)nz * ny * nx;
    t.ix = (int)(t.idx % nx);
    t.iy = (int)((t.idx / nx) % ny);
    t.iz = (int)(t.idx / ((long long)nx * ny));
    return t;
}

// Stage the coefficients of projections k0 .. k0 + kn - 1 (kn <= FASTEM_PROJ_CHUNK) as float into
// the shared array c. Every thread of the block must call it (it holds two barriers).
__device__ __forceinline__ void stage_coeffs(float* c, const double* __restrict__ coeffs, int k0, int kn) {
    __syncthreads();
    for (int t = threadIdx.x; t < kn * 8; t += blockDim.x) c[t] = (float)coeffs[(long long)k0 * 8 + t];
    __syncthreads();
}

// Detector position (u, v) of the voxel centre (fx, fy, fz) for the staged coefficients ck.
__device__ __forceinline__ void voxel_uv(const float* ck, float fx, float fy, float fz, float& u, float& v) {
    u = ck[0] * fx + ck[1] * fy + ck[2] * fz + ck[3];
    v = ck[4] * fx + ck[5] * fy + ck[6] * fz + ck[7];
}

// The bilinear cell of sub-point s of the voxel at (u, v): columns iu, iu + 1 (weights 1 - fu, fu),
// rows iv, iv + 1 (1 - fv, fv). The forward kernel splats into it, the back projection reads it.
template <int SUB>
__device__ __forceinline__ void subpoint_cell(const float* ck, float u, float v, int s, int& iu, float& fu, int& iv,
                                              float& fv) {
    float dx, dz;
    subpoint_offset<SUB>(s, dx, dz);
    bilinear_taps(u + ck[0] * dx + ck[2] * dz, iu, fu);
    bilinear_taps(v + ck[4] * dx + ck[6] * dz, iv, fv);
}
