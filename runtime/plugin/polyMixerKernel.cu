/*
 * PolyMixer CUDA kernels (see polyMixerKernel.cuh for the interface and the two-pass plan).
 *
 * Inputs are fp32 or fp16; every sum and every feature is computed in fp32. The order k is a
 * template parameter (1..4) so the per-token feature loop is fully unrolled by the compiler;
 * the runtime order picks the instantiation in one switch.
 */
#include "polyMixerContract.h"
#include "polyMixerKernel.cuh"

#include <cuda_fp16.h>

#include <algorithm>

namespace pomexport
{
namespace
{
// Reduction shape: clamp(N / kMIN_TOKENS_PER_CHUNK, 1, kMAX_TOKEN_CHUNKS) chunks of ceil(N / chunks)
// tokens: a chunk holds >= 16 tokens when N >= 16 (enough work per thread to amortise its partial
// write), at most 128 chunks bound the workspace and the finalize pass. Past 128 * 16 tokens the
// last chunks can be empty (begin >= N): they write zero partials.
constexpr int64_t kMIN_TOKENS_PER_CHUNK = 16;
constexpr int64_t kMAX_TOKEN_CHUNKS = 128;
constexpr int32_t kREDUCE_THREADS = 128;
constexpr int32_t kELEMENTWISE_THREADS = 256;
constexpr int32_t kSELECT_THREADS = 128;
// ~16 blocks per SM on a 132-SM H100: enough memory requests in flight to saturate HBM.
constexpr int64_t kSELECT_TARGET_BLOCKS = 2048;
constexpr int64_t kMAX_ELEMENTWISE_BLOCKS = 65535 * 8;
constexpr int64_t kMAX_GRID_YZ = 65535;

// Official pom package's activation for "powers": leaky_relu(0.01), then clamp to [-0.1, 6].
constexpr float kPOWERS_SLOPE = 0.01F;
constexpr float kPOWERS_LOW = -0.1F;
constexpr float kPOWERS_HIGH = 6.0F;
constexpr float kSQRT1_2 = 0.70710678118654752440F;

__device__ __forceinline__ float toFloat(float v)
{
    return v;
}

__device__ __forceinline__ float toFloat(__half v)
{
    return __half2float(v);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float v);

template <>
__device__ __forceinline__ float fromFloat<float>(float v)
{
    return v;
}

template <>
__device__ __forceinline__ __half fromFloat<__half>(float v)
{
    return __float2half_rn(v);
}

//! Exact (erf) GELU, as torch.nn.functional.gelu's default.
__device__ __forceinline__ float gelu(float x)
{
    return 0.5F * x * (1.0F + erff(x * kSQRT1_2));
}

__device__ __forceinline__ float powersActivation(float x)
{
    float const leaky = x > 0.0F ? x : x * kPOWERS_SLOPE;
    return fminf(fmaxf(leaky, kPOWERS_LOW), kPOWERS_HIGH);
}

__device__ __forceinline__ float gateActivation(float x, PolyGate gate)
{
    if (gate == PolyGate::kSIGMOID)
    {
        return 1.0F / (1.0F + expf(-x));
    }
    // torch's hardsigmoid: relu6(x + 3) / 6
    return fminf(fmaxf(x + 3.0F, 0.0F), 6.0F) / 6.0F;
}

/*
 * Pass 1: partial sums of P over one chunk of tokens.
 * moments: thread `col` owns column col of every chunk of h (width C/K) and produces the K
 *          running products p_1..p_K for it, so each gelu is computed once.
 * powers:  thread `col` owns channel col and evaluates its polynomial with its K coefficients.
 * partials layout: [B, chunks, C].
 */
template <typename T, PolyVariant V, int32_t K>
__global__ void polyMixerPartialSums(T const* __restrict__ h, float const* __restrict__ coeff,
    float* __restrict__ partials, int64_t tokens, int64_t channels, int64_t tokensPerChunk)
{
    constexpr int32_t kOUTS = V == PolyVariant::kMOMENTS ? K : 1;
    int64_t const columns = V == PolyVariant::kMOMENTS ? channels / K : channels;
    int64_t const col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (col >= columns)
    {
        return;
    }
    int64_t const chunk = blockIdx.y;
    int64_t const batch = blockIdx.z;
    int64_t const begin = chunk * tokensPerChunk;
    int64_t const end = min(tokens, begin + tokensPerChunk);

    float c[K];
#pragma unroll
    for (int32_t j = 0; j < K; ++j)
    {
        c[j] = V == PolyVariant::kPOWERS ? coeff[col * K + j] : 0.0F;
    }
    float acc[kOUTS];
#pragma unroll
    for (int32_t j = 0; j < kOUTS; ++j)
    {
        acc[j] = 0.0F;
    }

    T const* row = h + (batch * tokens + begin) * channels + col;
#pragma unroll 4
    for (int64_t n = begin; n < end; ++n, row += channels)
    {
        if constexpr (V == PolyVariant::kMOMENTS)
        {
            float p = 1.0F;
#pragma unroll
            for (int32_t j = 0; j < K; ++j)
            {
                p *= gelu(toFloat(row[j * columns]));
                acc[j] += p;
            }
        }
        else
        {
            float const a = powersActivation(toFloat(row[0]));
            float power = a;
            float p = c[0] * power;
#pragma unroll
            for (int32_t j = 1; j < K; ++j)
            {
                power *= a;
                p += c[j] * power;
            }
            acc[0] += p;
        }
    }

    float* out = partials + (batch * gridDim.y + chunk) * channels + col;
#pragma unroll
    for (int32_t j = 0; j < kOUTS; ++j)
    {
        out[j * columns] = acc[j];
    }
}

//! Pass 1b: state_out[b, c] = state[b, c] + sum over chunks, always in chunk order.
__global__ void polyMixerFinalizeState(float const* __restrict__ state, float const* __restrict__ partials,
    float* __restrict__ stateOut, int64_t batchChannels, int64_t channels, int64_t chunks)
{
    int64_t const stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < batchChannels; i += stride)
    {
        int64_t const batch = i / channels;
        int64_t const ch = i - batch * channels;
        float const* partial = partials + batch * chunks * channels + ch;
        float sum = 0.0F;
        for (int64_t k = 0; k < chunks; ++k)
        {
            sum += partial[k * channels];
        }
        stateOut[i] = state[i] + sum;
    }
}

/*
 * Pass 2: y = gate(g) * (state_out / (count + N)); one gate per head when selHeads > 1.
 * grid (channel tiles, token groups, B): a thread owns one channel of one stream, computes its
 * mean once and walks the tokens with a stride -- no per-element integer division.
 */
template <typename T>
__global__ void polyMixerGateSelect(T const* __restrict__ g, float const* __restrict__ stateOut,
    float const* __restrict__ count, T* __restrict__ y, int64_t tokens, int64_t channels, int32_t selHeads,
    PolyGate gate)
{
    int64_t const ch = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (ch >= channels)
    {
        return;
    }
    int64_t const batch = blockIdx.z;
    int64_t const gateWidth = selHeads > 1 ? selHeads : channels;
    int64_t const gateCol = selHeads > 1 ? ch / (channels / selHeads) : ch;
    // Same operation order as the reference: the mean first, then the gate.
    float const mean = stateOut[batch * channels + ch] / (count[batch] + static_cast<float>(tokens));
#pragma unroll 4
    for (int64_t n = blockIdx.y; n < tokens; n += gridDim.y)
    {
        int64_t const row = batch * tokens + n;
        y[row * channels + ch] = fromFloat<T>(gateActivation(toFloat(g[row * gateWidth + gateCol]), gate) * mean);
    }
}

int64_t ceilDiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

int32_t elementwiseBlocks(int64_t total)
{
    int64_t const blocks = std::max<int64_t>(1, ceilDiv(total, kELEMENTWISE_THREADS));
    return static_cast<int32_t>(std::min(kMAX_ELEMENTWISE_BLOCKS, blocks));
}

template <typename T, PolyVariant V, int32_t K>
void launchPartialSums(PolyMixerParams const& p, int64_t chunks, cudaStream_t stream)
{
    int64_t const columns = V == PolyVariant::kMOMENTS ? p.channels / K : p.channels;
    dim3 const grid(static_cast<uint32_t>(ceilDiv(columns, kREDUCE_THREADS)), static_cast<uint32_t>(chunks),
        static_cast<uint32_t>(p.batch));
    polyMixerPartialSums<T, V, K><<<grid, kREDUCE_THREADS, 0, stream>>>(static_cast<T const*>(p.h), p.coeff,
        p.workspace, p.tokens, p.channels, ceilDiv(p.tokens, chunks));
}

//! The one place the runtime order becomes a template parameter.
template <typename T, PolyVariant V>
void dispatchOrder(PolyMixerParams const& p, int64_t chunks, cudaStream_t stream)
{
    static_assert(contract::kMIN_ORDER == 1 && contract::kMAX_ORDER == 4, "update the order dispatch");
    switch (p.order)
    {
    case 1: launchPartialSums<T, V, 1>(p, chunks, stream); break;
    case 2: launchPartialSums<T, V, 2>(p, chunks, stream); break;
    case 3: launchPartialSums<T, V, 3>(p, chunks, stream); break;
    default: launchPartialSums<T, V, 4>(p, chunks, stream); break;
    }
}

template <typename T>
void launchForward(PolyMixerParams const& p, cudaStream_t stream)
{
    int64_t const chunks = polyMixerTokenChunks(p.tokens);
    if (chunks > 0)
    {
        if (p.variant == PolyVariant::kMOMENTS)
        {
            dispatchOrder<T, PolyVariant::kMOMENTS>(p, chunks, stream);
        }
        else
        {
            dispatchOrder<T, PolyVariant::kPOWERS>(p, chunks, stream);
        }
    }
    int64_t const batchChannels = p.batch * p.channels;
    polyMixerFinalizeState<<<elementwiseBlocks(batchChannels), kELEMENTWISE_THREADS, 0, stream>>>(
        p.state, p.workspace, p.stateOut, batchChannels, p.channels, chunks);
    int64_t const total = batchChannels * p.tokens;
    if (total > 0)
    {
        // Enough token groups for ~kSELECT_TARGET_BLOCKS blocks in all, each walking >= 1 token.
        int64_t const tiles = ceilDiv(p.channels, kSELECT_THREADS);
        int64_t const groups = std::clamp<int64_t>(kSELECT_TARGET_BLOCKS / (tiles * p.batch), 1, p.tokens);
        dim3 const grid(static_cast<uint32_t>(tiles), static_cast<uint32_t>(std::min(groups, kMAX_GRID_YZ)),
            static_cast<uint32_t>(p.batch));
        polyMixerGateSelect<T><<<grid, kSELECT_THREADS, 0, stream>>>(static_cast<T const*>(p.g), p.stateOut, p.count,
            static_cast<T*>(p.y), p.tokens, p.channels, p.selHeads, p.gate);
    }
}

} // namespace

int64_t polyMixerTokenChunks(int64_t tokens) noexcept
{
    return tokens <= 0 ? 0 : std::clamp<int64_t>(tokens / kMIN_TOKENS_PER_CHUNK, 1, kMAX_TOKEN_CHUNKS);
}

size_t polyMixerWorkspaceSize(int64_t batch, int64_t tokens, int64_t channels) noexcept
{
    int64_t const floats = std::max<int64_t>(0, batch) * polyMixerTokenChunks(tokens) * std::max<int64_t>(0, channels);
    return static_cast<size_t>(floats) * sizeof(float);
}

char const* polyMixerValidate(PolyMixerParams const& p) noexcept
{
    if (p.order < contract::kMIN_ORDER || p.order > contract::kMAX_ORDER)
    {
        return "order must be in 1..4";
    }
    if (p.batch < 0 || p.tokens < 0 || p.channels <= 0)
    {
        return "shapes must be non-negative and C positive";
    }
    if (p.batch > kMAX_GRID_YZ)
    {
        return "batch larger than 65535 is not supported";
    }
    if (p.variant == PolyVariant::kMOMENTS && p.channels % p.order != 0)
    {
        return "moments: C must be divisible by order";
    }
    if (p.variant == PolyVariant::kPOWERS && p.coeff == nullptr)
    {
        return "powers: coeff [C, order] is required";
    }
    if (p.selHeads > 1 && p.channels % p.selHeads != 0)
    {
        return "C must be divisible by sel_heads";
    }
    bool const hasWork = p.batch > 0 && p.tokens > 0;
    if (p.batch > 0 && (p.state == nullptr || p.count == nullptr || p.stateOut == nullptr))
    {
        return "state, count and state_out must be set";
    }
    if (hasWork && (p.h == nullptr || p.g == nullptr || p.y == nullptr || p.workspace == nullptr))
    {
        return "h, g, y and the workspace must be set";
    }
    return nullptr;
}

cudaError_t polyMixerForward(PolyMixerParams const& p, cudaStream_t stream) noexcept
{
    if (polyMixerValidate(p) != nullptr)
    {
        return cudaErrorInvalidValue;
    }
    if (p.batch == 0)
    {
        return cudaSuccess;
    }
    if (p.dtype == PolyDType::kFLOAT16)
    {
        launchForward<__half>(p, stream);
    }
    else
    {
        launchForward<float>(p, stream);
    }
    return cudaGetLastError();
}

} // namespace pomexport
