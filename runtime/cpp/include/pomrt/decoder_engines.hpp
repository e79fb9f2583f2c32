// Which TensorRT engines of an artifact's decoder stage a runtime runs (issue 21;
// docs/design.md §6.2). CPU-only and pure, so the choice is unit-tested without TensorRT.
//
// The Python builder (export/engine/decoder_engine.py) writes one plan per decoder role,
//   decoder/<role>-<gpu>-sm<NN>-trt<major>.<minor>.<patch>.plan,
// lists and hashes it, and records its EngineKey in manifest["decoder"]["engines"][plan]
// (export/artifact/engines.py::engine_record); the bundle's build.sh builds the same plans on
// the device with trtexec and lists and records them in device.json instead (the manifest
// stays as shipped), whose records mergeDeviceFiles adds to DecoderSpec::engines once the
// record is verified (docs/design.md §6.1). A runtime on (TensorRT release, GPU, SM) uses
// the plan of that name for every role, as it finds the step engine by enginePlanName, and
// only when the record says it was built from the graph now in the artifact for that very
// target: a plan of an earlier graph would run the wrong network, and TensorRT only refuses a
// plan of another version or GPU, not one of another graph.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "pomrt/manifest.hpp"

namespace pomrt
{

//! A GPU name as a file-name part: lower case, every run of other characters one '-'
//! ("NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3"), as engines.py::gpu_slug.
std::string gpuSlug(std::string const& name);

//! "major.minor.patch" of a TensorRT version ("10.3.0.26" -> "10.3.0", "10.3" -> "10.3.0"),
//! as engines.py::trt_release; empty when it is not a version.
std::string trtRelease(std::string const& version);

//! "decoder/<role>-<gpu>-sm<NN>-trt<release>.plan", as decoder_engine.py::decoder_engine_name.
std::string decoderPlanName(std::string const& role, std::string const& gpuName, int32_t sm, std::string const& trtVersion);

//! The plan of one role for a target, or why there is none.
struct DecoderEngineChoice
{
    std::string plan;   //!< the listed plan to deserialise; empty when there is none
    std::string reason; //!< why not (one line naming the plan); empty when `plan` is set
};

//! The engine of decoder role `role` for TensorRT `trtVersion` on GPU `gpuName` (the CUDA
//! device name) of SM `sm`: the plan of that name, listed in the manifest's files or the
//! verified device.json's (so hashed at open) and recorded in the decoder entry or device.json
//! with that graph's sha256, TensorRT release, GPU and SM and an empty profile (static shapes). Throws Error(INVALID_ARGUMENT) for a role the kind does not have.
DecoderEngineChoice chooseDecoderEngine(
    Manifest const& m, std::string const& role, std::string const& trtVersion, std::string const& gpuName, int32_t sm);

//! Every role's plan (role -> plan), or the reason of the first role without one: a stream is
//! decoded by all its roles' engines or not at all.
struct DecoderEngineSet
{
    std::map<std::string, std::string> plans;
    std::string reason; //!< empty when every role has its plan
};

DecoderEngineSet chooseDecoderEngines(
    Manifest const& m, std::string const& trtVersion, std::string const& gpuName, int32_t sm);

} // namespace pomrt
