// The TensorRT runtime behind pomrt_create (docs/design.md §3): the frame loop is in
// generator.cpp, the decoded RGB frames of its slots in generator_rgb.cpp (issue 21).
#pragma once

#include <NvInferRuntime.h>

#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "device.hpp"
#include "engine.hpp"
#include "kernels.cuh"
#include "pomrt/runtime.hpp"
#include "trt_decoder.hpp"

namespace pomrt
{

//! Host bookkeeping of one slot (StreamSlot in state.py): the stream is the slot index.
struct Slot
{
    bool active{false};
    bool unread{false};
    uint64_t seed{0};
    int32_t label{0};
    uint64_t frame{0};
};

class TrtRuntime final : public Runtime
{
public:
    TrtRuntime(std::filesystem::path const& dir, pomrt_options const& options);
    ~TrtRuntime() override;

    Manifest const& manifest() const override
    {
        return mArtifact.manifest();
    }

    int32_t slots() const override
    {
        return mSlots;
    }

    int32_t rows() const override
    {
        return mRows;
    }

    void resetStream(int32_t slot, uint64_t seed, int32_t label) override;
    void nextFrame(int32_t slot, float* out, size_t bytes) override;
    RgbFrames rgbFrames() const override;
    size_t nextRgb(int32_t slot, float* out, size_t bytes) override;

private:
    Slot& started(int32_t slot);
    void advanceBatch();
    void decode();
    void allocate();
    void bindStatic();
    void generateFrame();
    void step(float t, float* stateOut);
    void commit();
    void uploadRow(DeviceBuffer const& buffer, int32_t row, void const* value, size_t size);

    int32_t mDevice; // first: every CUDA object below is created on it
    Artifact mArtifact;
    ModelConfig mConfig;
    int32_t mSlots;
    int32_t mRows;
    bool mGuided;
    float mCfgScale;
    ModelDType mDType;
    int64_t mFrameElems;
    std::vector<float> mTimes;
    std::vector<Slot> mSlotState;
    Logger mLogger;
    std::unique_ptr<EngineBundle> mEngine;
    std::unique_ptr<nvinfer1::IExecutionContext> mContext;
    CudaStream mStream;
    DeviceBuffer mX, mXt, mV, mT, mLabel, mFrameIndex, mCount, mActive, mKeys, mScratch;
    DeviceBuffer mState[2];
    int32_t mFront{0};
    std::vector<float> mHostFrames;
    std::string mNoDecoder; //!< why mDecoder is empty
    std::unique_ptr<TrtDecoder> mDecoder;
    std::vector<std::deque<RgbFrame>> mRgb; //!< per slot: decoded frames not read yet
};

} // namespace pomrt
