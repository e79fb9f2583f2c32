// TensorRT engine for an artifact: deserialise engines/<gpu>-sm<NN>-trt<ver>.plan, or build
// it from the ONNX (strongly typed, profile from the manifest's batch range) and cache it.
#pragma once

#include <NvInfer.h>

#include <cstdint>
#include <memory>
#include <string>

#include "plugin_loads.hpp"
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

//! Everything that must outlive the engine, in destruction order (engine first).
struct EngineBundle
{
    PluginLease plugin; //!< the plugin library, shared with the process's other users; empty: portable
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

//! What an engine is built for: the CUDA device's name and SM, the TensorRT library's
//! "major.minor.patch" (loaded at run time, not the headers').
struct GpuTarget
{
    std::string name;
    int32_t sm{0};
    std::string trtVersion;
};

GpuTarget gpuTarget(int32_t device);

//! "engines/<gpu>-sm<NN>-trt<major>.<minor>.<patch>.plan" for the current device and the
//! TensorRT library loaded at run time; gpu = the device name, lower case, [a-z0-9-] only.
std::string enginePlanName(int32_t device);

//! Load (or build and cache) the engine of a verified artifact; checks its IO against the
//! manifest's contract. Throws Error with TENSORRT / PLUGIN / ARTIFACT status.
std::unique_ptr<EngineBundle> loadEngine(Artifact const& artifact, pomrt_options const& options, Logger& logger);

} // namespace pomrt
