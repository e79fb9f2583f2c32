// Device kernels of the frame loop; grid-stride loops, one launch per operation.
#include <cuda_fp16.h>

#include "kernels.cuh"
#include "pomrt/noise_math.h"

namespace pomrt
{
namespace
{
constexpr int32_t kBlock = 256;

int32_t gridFor(int64_t n)
{
    int64_t const blocks = (n + kBlock - 1) / kBlock;
    return static_cast<int32_t>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

__device__ inline float load(void const* p, int64_t i, ModelDType dtype)
{
    return dtype == ModelDType::kHALF ? __half2float(static_cast<__half const*>(p)[i]) : static_cast<float const*>(p)[i];
}

__device__ inline void store(void* p, int64_t i, float value, ModelDType dtype)
{
    if (dtype == ModelDType::kHALF)
    {
        static_cast<__half*>(p)[i] = __float2half(value);
    }
    else
    {
        static_cast<float*>(p)[i] = value;
    }
}

__global__ void noiseKernel(float* x, uint64_t const* keys, float const* active, int32_t slots, int64_t n)
{
    int64_t const total = n * slots;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    {
        int64_t const s = i / n;
        x[i] = active[s] != 0.0F ? pomrtNoiseAt(keys[s], static_cast<uint64_t>(i - s * n)) : 0.0F;
    }
}

__global__ void prepareKernel(float const* x, void* xT, int64_t total, bool guided, ModelDType dtype)
{
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    {
        store(xT, i, x[i], dtype);
        if (guided)
        {
            store(xT, i + total, x[i], dtype);
        }
    }
}

__global__ void fillKernel(float* t, int32_t rows, float value)
{
    for (int32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < rows; i += gridDim.x * blockDim.x)
    {
        t[i] = value;
    }
}

__global__ void eulerKernel(float* x, void const* v, int64_t total, bool guided, float cfgScale, float dt, ModelDType dtype)
{
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    {
        float velocity = load(v, i, dtype);
        if (guided)
        {
            float const uncond = load(v, i + total, dtype);
            velocity = uncond + cfgScale * (velocity - uncond);
        }
        x[i] += dt * velocity;
    }
}

__global__ void commitKernel(float* stateWrite, float* count, int64_t* frameIndex, float const* active, int32_t layers,
    int32_t rows, int64_t channels, float tokensPerFrame)
{
    int64_t const total = int64_t{layers} * rows * channels;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    {
        int64_t const row = (i / channels) % rows;
        stateWrite[i] *= active[row];
        if (i < rows)
        {
            count[i] += active[i] * tokensPerFrame;
            frameIndex[i] += active[i] != 0.0F ? 1 : 0;
        }
    }
}
} // namespace

cudaError_t launchNoise(float* x, uint64_t const* keys, float const* active, int32_t slots, int64_t n, cudaStream_t stream)
{
    noiseKernel<<<gridFor(n * slots), kBlock, 0, stream>>>(x, keys, active, slots, n);
    return cudaGetLastError();
}

cudaError_t launchPrepareInput(
    float const* x, void* xT, int32_t slots, int64_t n, bool guided, ModelDType dtype, cudaStream_t stream)
{
    prepareKernel<<<gridFor(n * slots), kBlock, 0, stream>>>(x, xT, n * slots, guided, dtype);
    return cudaGetLastError();
}

cudaError_t launchFill(float* t, int32_t rows, float value, cudaStream_t stream)
{
    fillKernel<<<1, kBlock, 0, stream>>>(t, rows, value);
    return cudaGetLastError();
}

cudaError_t launchEuler(float* x, void const* v, int32_t slots, int64_t n, bool guided, float cfgScale, float dt,
    ModelDType dtype, cudaStream_t stream)
{
    eulerKernel<<<gridFor(n * slots), kBlock, 0, stream>>>(x, v, n * slots, guided, cfgScale, dt, dtype);
    return cudaGetLastError();
}

cudaError_t launchCommit(float* stateWrite, float* count, int64_t* frameIndex, float const* active, int32_t layers,
    int32_t rows, int64_t channels, float tokensPerFrame, cudaStream_t stream)
{
    int64_t const total = int64_t{layers} * rows * channels;
    commitKernel<<<gridFor(total), kBlock, 0, stream>>>(
        stateWrite, count, frameIndex, active, layers, rows, channels, tokensPerFrame);
    return cudaGetLastError();
}

} // namespace pomrt
