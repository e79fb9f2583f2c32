// TensorRT engine for an artifact: deserialise engines/<gpu>-sm<NN>-trt<ver>.plan, or build
// it from the ONNX (strongly typed, profile from the manifest's batch range) and cache it.
#pragma once

#include <NvInfer.h>

#include <cstdint>
#include <memory>
#include <string>

#include "pomrt.h"
#include "pomrt/manifest.hpp"

namespace pomrt
{

//! TensorRT messages to stderr, filtered by the option's verbosity.
class Logger : public nvinfer1::ILogger
{
public:
    explicit Logger(int32_t verbose)
        : mVerbose(verbose)
    {
    }

    void log(Severity severity, nvinfer1::AsciiChar const* message) noexcept override;

private:
    int32_t mVerbose;
};

//! The PolyMixer plugin library registered with TensorRT's plugin registry (deregistered on
//! destruction). Empty when the artifact is used through its portable flavor.
class PluginLibrary
{
public:
    PluginLibrary() = default;
    PluginLibrary(PluginLibrary const&) = delete;
    PluginLibrary& operator=(PluginLibrary const&) = delete;
    ~PluginLibrary();

    //! Load `path` after checking its sha256 equals `sha256`. Throws Error(POMRT_ERR_PLUGIN).
    void load(std::string const& path, std::string const& sha256);

    bool loaded() const noexcept
    {
        return mHandle != nullptr;
    }

private:
    nvinfer1::IPluginRegistry::PluginLibraryHandle mHandle{nullptr};
};

//! Everything that must outlive the engine, in destruction order (engine first).
struct EngineBundle
{
    std::unique_ptr<PluginLibrary> plugin;
    std::unique_ptr<nvinfer1::IRuntime> runtime;
    std::unique_ptr<nvinfer1::ICudaEngine> engine;
    std::string planName; //!< manifest name of the plan that was used or built

    ~EngineBundle()
    {
        engine.reset(); // TensorRT requires the engine to die before its runtime
        runtime.reset();
        plugin.reset();
    }
};

//! "engines/<gpu>-sm<NN>-trt<major>.<minor>.<patch>.plan" for the current device and the
//! TensorRT library loaded at run time; gpu = the device name, lower case, [a-z0-9-] only.
std::string enginePlanName(int32_t device);

//! Load (or build and cache) the engine of a verified artifact; checks its IO against the
//! manifest's contract. Throws Error with TENSORRT / PLUGIN / ARTIFACT status.
std::unique_ptr<EngineBundle> loadEngine(Artifact const& artifact, pomrt_options const& options, Logger& logger);

} // namespace pomrt
