// Counter-based random numbers (SplitMix64), bit-identical to kernels/_hash_rng.py.
// A number is a pure function of (seed, example, purpose, index): no generator state.
#pragma once

#define FASTEM_GOLDEN 0x9E3779B97F4A7C15ULL
#define FASTEM_PURPOSE_MUL 0xD1B54A32D192ED03ULL

// stream purposes (keep in sync with kernels/_hash_rng.py)
#define RNG_NOISE 1ULL
#define RNG_SPIRAL 2ULL
#define RNG_GRID_PLACE 3ULL
#define RNG_GRID_WALK 4ULL
#define RNG_AUGMENT 5ULL

__device__ __forceinline__ unsigned long long rng_fmix(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ unsigned long long rng_stream_key(unsigned long long seed, unsigned long long example,
                                                             unsigned long long purpose) {
    const unsigned long long ke = rng_fmix(seed + FASTEM_GOLDEN * (example + 1ULL));
    return rng_fmix(ke ^ (purpose * FASTEM_PURPOSE_MUL));
}

__device__ __forceinline__ unsigned long long rng_word(unsigned long long key, unsigned long long index) {
    return rng_fmix(key + FASTEM_GOLDEN * (index + 1ULL));
}

__device__ __forceinline__ float rng_uniform32(unsigned long long key, unsigned long long index) {
    return (float)(rng_word(key, index) >> 40) * 5.9604644775390625e-08f;  // 2^-24
}

__device__ __forceinline__ double rng_uniform64(unsigned long long key, unsigned long long index) {
    return (double)(rng_word(key, index) >> 11) * 1.1102230246251565e-16;  // 2^-53
}

__device__ __forceinline__ double rng_normal64(unsigned long long key, unsigned long long iu, unsigned long long iv) {
    const double u = rng_uniform64(key, iu), v = rng_uniform64(key, iv);
    return sqrt(-2.0 * log1p(-u)) * cos(6.283185307179586 * v);
}

__device__ __forceinline__ int rng_dihedral_index(unsigned long long seed, unsigned long long example) {
    return (int)(rng_word(rng_stream_key(seed, example, RNG_AUGMENT), 0ULL) >> 61);
}
