/*
 * PolyMixer CUDA kernels: the host-side interface (docs/design.md §2).
 *
 *   y         [B, N, C] (dtype of h) = gate(g) * (state + sum_n P(h_n)) / (count + N)
 *   state_out [B, C] fp32            = state + sum_n P(h_n)
 *
 * Two passes, P is never materialised for all tokens:
 *   1. token-parallel partial sums: grid (channel tiles, token chunks, B); each thread keeps
 *      its fp32 sums in registers and writes one partial per chunk to the workspace; a
 *      second, tiny kernel adds the partials to `state` in a fixed order (deterministic:
 *      no atomics, the same result on every run and every GPU).
 *   2. fused gate-select: y = gate(g) * state_out / (count + N), one read of g, one write of y.
 *
 * This header only needs the CUDA runtime API, so the plugin's C++ sources (compiled by the
 * host compiler) include it as well as the .cu file.
 */
#ifndef POMEXPORT_POLY_MIXER_KERNEL_CUH
#define POMEXPORT_POLY_MIXER_KERNEL_CUH

#include <cstddef>
#include <cstdint>
#include <cuda_runtime_api.h>

namespace pomexport
{

enum class PolyVariant : int32_t
{
    kMOMENTS = 0, //!< products of gelu'd chunks; coeff unused
    kPOWERS = 1,  //!< sum_j coeff[c, j] * a^j, a = clamp(leaky_relu(h, 0.01), -0.1, 6)
};

enum class PolyGate : int32_t
{
    kSIGMOID = 0,
    kHARDSIGMOID = 1,
};

enum class PolyDType : int32_t
{
    kFLOAT32 = 0,
    kFLOAT16 = 1,
};

//! Everything one forward needs. Pointers are device pointers; shapes as in the file comment.
struct PolyMixerParams
{
    void const* h{nullptr};       //!< [B, N, C], dtype
    void const* g{nullptr};       //!< [B, N, C] or [B, N, selHeads] when selHeads > 1, dtype
    float const* state{nullptr};  //!< [B, C]
    float const* count{nullptr};  //!< [B]
    float const* coeff{nullptr};  //!< [C, order], powers only
    void* y{nullptr};             //!< [B, N, C], dtype
    float* stateOut{nullptr};     //!< [B, C]; may alias nothing else
    float* workspace{nullptr};    //!< polyMixerWorkspaceSize(B, N, C) bytes
    int64_t batch{0};
    int64_t tokens{0};
    int64_t channels{0};
    int32_t order{2};
    int32_t selHeads{0};
    PolyVariant variant{PolyVariant::kMOMENTS};
    PolyGate gate{PolyGate::kSIGMOID};
    PolyDType dtype{PolyDType::kFLOAT32};
};

//! Number of token chunks the reduction splits N into (a function of N only, so results do not
//! depend on the batch size or the GPU).
int64_t polyMixerTokenChunks(int64_t tokens) noexcept;

//! Workspace bytes for the partial sums; monotonic in every argument, so the size for the
//! largest shape of an optimisation profile serves every smaller shape.
size_t polyMixerWorkspaceSize(int64_t batch, int64_t tokens, int64_t channels) noexcept;

//! Checks shapes and attributes; returns nullptr when valid, else a static message.
char const* polyMixerValidate(PolyMixerParams const& params) noexcept;

//! Enqueues the forward on `stream`. Returns cudaErrorInvalidValue for invalid params (see
//! polyMixerValidate) or the launch error; never throws.
cudaError_t polyMixerForward(PolyMixerParams const& params, cudaStream_t stream) noexcept;

} // namespace pomexport

#endif // POMEXPORT_POLY_MIXER_KERNEL_CUH
