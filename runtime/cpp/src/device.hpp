// CUDA runtime helpers of the TensorRT build: status checks and RAII device memory/streams.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <utility>

#include "pomrt/error.hpp"

namespace pomrt
{

inline void cudaCheck(cudaError_t status, char const* what)
{
    if (status != cudaSuccess)
    {
        throw Error(POMRT_ERR_CUDA, std::string(what) + ": " + cudaGetErrorString(status));
    }
}

//! One cudaMalloc'ed block, zeroed at allocation, freed on destruction.
class DeviceBuffer
{
public:
    DeviceBuffer() = default;

    explicit DeviceBuffer(size_t bytes)
        : mBytes(bytes)
    {
        cudaCheck(cudaMalloc(&mData, bytes > 0 ? bytes : 1), "cudaMalloc");
        cudaCheck(cudaMemset(mData, 0, bytes), "cudaMemset");
    }

    DeviceBuffer(DeviceBuffer&& other) noexcept
        : mData(std::exchange(other.mData, nullptr))
        , mBytes(std::exchange(other.mBytes, 0))
    {
    }

    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept
    {
        std::swap(mData, other.mData);
        std::swap(mBytes, other.mBytes);
        return *this;
    }

    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;

    ~DeviceBuffer()
    {
        if (mData != nullptr)
        {
            cudaFree(mData); // no throw from a destructor; a failing free leaks at worst
        }
    }

    template <typename T = void>
    T* get() const noexcept
    {
        return static_cast<T*>(mData);
    }

    size_t bytes() const noexcept
    {
        return mBytes;
    }

private:
    void* mData{nullptr};
    size_t mBytes{0};
};

//! A non-blocking CUDA stream: every kernel and enqueueV3 of a runtime runs on it.
class CudaStream
{
public:
    CudaStream()
    {
        cudaCheck(cudaStreamCreateWithFlags(&mStream, cudaStreamNonBlocking), "cudaStreamCreate");
    }

    CudaStream(CudaStream const&) = delete;
    CudaStream& operator=(CudaStream const&) = delete;

    ~CudaStream()
    {
        cudaStreamDestroy(mStream);
    }

    cudaStream_t get() const noexcept
    {
        return mStream;
    }

    void synchronize() const
    {
        cudaCheck(cudaStreamSynchronize(mStream), "cudaStreamSynchronize");
    }

private:
    cudaStream_t mStream{nullptr};
};

} // namespace pomrt
