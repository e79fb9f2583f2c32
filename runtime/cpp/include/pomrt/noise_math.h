/*
 * Deterministic frame noise, shared by the host (pomrt_noise) and the CUDA kernel.
 *
 * Element i of frame (seed, stream, frame) is a Box-Muller normal from a counter-based hash:
 *   key  = mix(seed ^ mix(stream ^ mix(frame)))         (mix = SplitMix64 finaliser)
 *   bits = mix(key + golden * (i / 2 + 1))               (one 64-bit draw per pair)
 *   u1 = ((bits >> 40) + 1) / 2^24 in (0, 1], u2 = ((bits >> 16) & 0xFFFFFF) / 2^24
 *   z  = sqrt(-2 ln u1) * (i even ? cos(2 pi u2) : sin(2 pi u2))
 * The integer part is exact everywhere; the float functions may differ by a few ulps between
 * host libm and CUDA's device functions. It is NOT numpy's generator: a clip from the C++
 * runtime starts from different noise than pomexport.runtime.VideoGenerator (by design).
 */
#ifndef POMRT_NOISE_MATH_H
#define POMRT_NOISE_MATH_H

#include <stdint.h>
#include <math.h>

#if defined(__CUDACC__)
#define POMRT_HD __host__ __device__ inline
#else
#define POMRT_HD static inline
#endif

POMRT_HD uint64_t pomrtMix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

POMRT_HD uint64_t pomrtNoiseKey(uint64_t seed, uint64_t stream, uint64_t frame)
{
    return pomrtMix64(seed ^ pomrtMix64(stream ^ pomrtMix64(frame)));
}

POMRT_HD float pomrtNoiseAt(uint64_t key, uint64_t i)
{
    uint64_t const bits = pomrtMix64(key + 0x9E3779B97F4A7C15ULL * (i / 2 + 1));
    float const u1 = (float) ((bits >> 40) + 1) * (1.0f / 16777216.0f);
    float const u2 = (float) ((bits >> 16) & 0xFFFFFFULL) * (1.0f / 16777216.0f);
    float const r = sqrtf(-2.0f * logf(u1));
    float const angle = 6.28318530717958647692f * u2;
    return (i & 1) ? r * sinf(angle) : r * cosf(angle);
}

#endif /* POMRT_NOISE_MATH_H */
