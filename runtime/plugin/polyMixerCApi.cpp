/*
 * A plain C entry point to the PolyMixer kernels, without TensorRT.
 *
 * Built into libpomexport_polymixer.so (CMake target pomexport_polymixer, or
 * runtime/kernels/cuda_harness.py compiles it with nvcc) so that a GPU machine can run the
 * kernels on torch tensors through ctypes and compare them with torch.ops.pomexport.poly_mixer.
 */
#include "polyMixerKernel.cuh"

#define POMEXPORT_C_API extern "C" __attribute__((visibility("default")))

//! Bytes of device workspace polymixer_forward needs for these shapes.
POMEXPORT_C_API size_t polymixer_workspace_size(int64_t batch, int64_t tokens, int64_t channels)
{
    return pomexport::polyMixerWorkspaceSize(batch, tokens, channels);
}

/*
 * Enqueues the forward on `stream` (a cudaStream_t, 0 = legacy default stream).
 * dtype: 0 fp32, 1 fp16; variant: 0 moments, 1 powers; gate: 0 sigmoid, 1 hardsigmoid.
 * Returns 0 on success, else a cudaError_t value (1 = invalid arguments, see
 * polymixer_error_string).
 */
POMEXPORT_C_API int32_t polymixer_forward(void const* h, void const* g, float const* state, float const* count,
    float const* coeff, void* y, float* stateOut, void* workspace, int64_t batch, int64_t tokens, int64_t channels,
    int32_t dtype, int32_t variant, int32_t order, int32_t gate, int32_t selHeads, void* stream)
{
    if (dtype < 0 || dtype > 1 || variant < 0 || variant > 1 || gate < 0 || gate > 1)
    {
        return static_cast<int32_t>(cudaErrorInvalidValue);
    }
    pomexport::PolyMixerParams params;
    params.h = h;
    params.g = g;
    params.state = state;
    params.count = count;
    params.coeff = coeff;
    params.y = y;
    params.stateOut = stateOut;
    params.workspace = static_cast<float*>(workspace);
    params.batch = batch;
    params.tokens = tokens;
    params.channels = channels;
    params.order = order;
    params.selHeads = selHeads;
    params.variant = static_cast<pomexport::PolyVariant>(variant);
    params.gate = static_cast<pomexport::PolyGate>(gate);
    params.dtype = static_cast<pomexport::PolyDType>(dtype);
    return static_cast<int32_t>(pomexport::polyMixerForward(params, static_cast<cudaStream_t>(stream)));
}

//! Why the arguments of a polymixer_forward call are invalid, or NULL when they are valid.
POMEXPORT_C_API char const* polymixer_validate(int64_t batch, int64_t tokens, int64_t channels, int32_t variant,
    int32_t order, int32_t selHeads, int32_t hasCoeff)
{
    pomexport::PolyMixerParams params;
    params.batch = batch;
    params.tokens = tokens;
    params.channels = channels;
    params.order = order;
    params.selHeads = selHeads;
    params.variant = static_cast<pomexport::PolyVariant>(variant);
    // Shapes and attributes only: stand-in non-null pointers so the pointer checks pass.
    static float sDummy = 0.0F;
    params.h = params.g = params.y = &sDummy;
    params.state = params.count = &sDummy;
    params.stateOut = params.workspace = &sDummy;
    params.coeff = hasCoeff != 0 ? &sDummy : nullptr;
    return pomexport::polyMixerValidate(params);
}

//! The CUDA runtime's message for a code returned by polymixer_forward.
POMEXPORT_C_API char const* polymixer_error_string(int32_t code)
{
    return cudaGetErrorString(static_cast<cudaError_t>(code));
}
