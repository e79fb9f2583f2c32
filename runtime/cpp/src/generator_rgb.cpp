// The decoded RGB frames of the TensorRT runtime's slots (issue 21; docs/design.md §6.2):
// after each committed frame, generator.cpp calls decode(); the frames queue per slot on the
// host until pomrt_next_rgb reads them.
#include <cstring>

#include "trt_runtime.hpp"

namespace pomrt
{

//! Each active slot's committed latent (x, fp32, clean after the last Euler step) through the
//! decoder, batch 1 per slot, on the same stream: nothing waits for the host in between.
void TrtRuntime::decode()
{
    for (size_t i = 0; mDecoder && i < mSlotState.size(); ++i)
    {
        if (mSlotState[i].active)
        {
            mDecoder->enqueue(static_cast<int32_t>(i), mX.get<float>() + i * static_cast<size_t>(mFrameElems),
                mStream.get());
        }
    }
}

RgbFrames TrtRuntime::rgbFrames() const
{
    if (!mDecoder)
    {
        return RgbFrames{false, 0, 0, 0, 0, mNoDecoder};
    }
    bool const streaming = mArtifact.manifest().decoder->streaming();
    return RgbFrames{true, mDecoder->height(), mDecoder->width(), mDecoder->framesOf(streaming ? "first" : "decode"),
        mDecoder->framesOf(streaming ? "next" : "decode"), std::string()};
}

size_t TrtRuntime::nextRgb(int32_t slot, float* out, size_t bytes)
{
    if (!mDecoder)
    {
        throw Error(POMRT_ERR_UNSUPPORTED, "this runtime does not decode (" + mNoDecoder + "): read latents with pomrt_next_frame");
    }
    Slot& s = started(slot);
    size_t const frameBytes = static_cast<size_t>(3 * mDecoder->height()) * static_cast<size_t>(mDecoder->width()) * sizeof(float);
    if (bytes < frameBytes)
    {
        throw Error(POMRT_ERR_BUFFER_TOO_SMALL,
            "output buffer of " + std::to_string(bytes) + " bytes; an RGB frame needs " + std::to_string(frameBytes));
    }
    std::deque<RgbFrame>& queue = mRgb[static_cast<size_t>(slot)];
    if (queue.empty())
    {
        advanceBatch();
    }
    size_t n = 0;
    for (; !queue.empty() && (n + 1) * frameBytes <= bytes; ++n)
    {
        std::memcpy(reinterpret_cast<char*>(out) + n * frameBytes, queue.front().data(), frameBytes);
        queue.pop_front();
    }
    if (queue.empty())
    {
        s.unread = false; // its frame is read: the batch may advance
    }
    return n;
}

//! The clean frame enters the state: t = 0 into the other ping-pong buffer, then swap.
void TrtRuntime::commit()
{
    if (!mConfig.video)
    {
        return; // image models: frames are independent images, there is no state
    }
    float* write = mState[1 - mFront].get<float>();
    step(0.0F, write);
    cudaCheck(launchCommit(write, mCount.get<float>(), mFrameIndex.get<int64_t>(), mActive.get<float>(),
                  mConfig.depth, mRows, mConfig.stateWidth(), static_cast<float>(mConfig.tokensPerFrame()),
                  mStream.get()),
        "commit");
    mFront = 1 - mFront;
}

} // namespace pomrt
