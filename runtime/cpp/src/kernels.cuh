// The small device kernels of the frame loop (everything between two enqueueV3 calls), so
// that nothing goes to the host between steps (docs/design.md §3).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pomrt
{

enum class ModelDType : int32_t
{
    kFLOAT = 0,
    kHALF = 1,
};

//! x[s] = noise(key[s]) for active slots (active[s] != 0), zeros otherwise. x: (slots, n) fp32.
cudaError_t launchNoise(float* x, uint64_t const* keys, float const* active, int32_t slots, int64_t n, cudaStream_t stream);

//! x_t rows [0, S) = x, and rows [S, 2S) = x too when guided; converted to the model dtype.
cudaError_t launchPrepareInput(
    float const* x, void* xT, int32_t slots, int64_t n, bool guided, ModelDType dtype, cudaStream_t stream);

//! t[0..rows) = value.
cudaError_t launchFill(float* t, int32_t rows, float value, cudaStream_t stream);

//! x += dt * v, v = v_cond or, guided, v_u + w (v_c - v_u) (rows S.. of the model output).
cudaError_t launchEuler(float* x, void const* v, int32_t slots, int64_t n, bool guided, float cfgScale, float dt,
    ModelDType dtype, cudaStream_t stream);

//! After a commit step wrote `stateWrite` (L, rows, C): zero inactive rows, count += active *
//! tokens, frameIndex += active.
cudaError_t launchCommit(float* stateWrite, float* count, int64_t* frameIndex, float const* active, int32_t layers,
    int32_t rows, int64_t channels, float tokensPerFrame, cudaStream_t stream);

} // namespace pomrt
