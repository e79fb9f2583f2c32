// The optional latent decoder stage of an artifact (issue 21; docs/design.md §6.2): the
// manifest's `decoder` entry as the runtime reads it, the C++ twin of
// export/artifact/decoder.py (same checks, same roles, same IO contract).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pomrt/onnx_graph.hpp"

namespace pomrt
{

//! One graph input or output of a decoder graph: static dims, fp32 or fp16.
struct DecoderTensor
{
    std::string name;
    std::vector<int64_t> dims;
    std::string dtype; // float32 | float16
};

//! The IO of one decoder role (`decode`, or `first` and `next`).
struct DecoderGraphIo
{
    std::vector<DecoderTensor> inputs;
    std::vector<DecoderTensor> outputs;
};

//! One record of manifest["decoder"]["engines"]: the EngineKey a plan was built under
//! (export/artifact/engines.py::engine_record, written by export/engine/decoder_engine.py).
struct DecoderEngineRecord
{
    std::string onnxSha256;
    std::string trtVersion;
    std::string gpuName;
    int64_t sm{0};
    bool emptyProfile{false}; //!< key.profile is [] (decoder graphs have static shapes)
};

//! manifest["decoder"]: kind `image` (role `decode`: latent [1, C, h, w] -> rgb [1, 3, H, W])
//! or `wan-stream` (roles `first`, `next`: latent [1, C, 1, h, w] -> frames [1, 3, F, H, W]
//! and the caches `statePairs` name: input of `next`, output of `first`/`next`).
struct DecoderSpec
{
    std::string sourceClass;
    std::string kind;
    std::string precision;
    std::map<std::string, std::string> files;      //!< role -> decoder/<role>.onnx
    std::map<std::string, int32_t> framesPerStep; //!< role -> RGB frames per call
    std::map<std::string, DecoderGraphIo> graphs; //!< role -> IO contract
    std::vector<std::pair<std::string, std::string>> statePairs;
    //! Plan name -> record; a record that is not a table with a well-typed key is left out
    //! (as the step engine's records: a plan without a usable record is never chosen).
    std::map<std::string, DecoderEngineRecord> engines;

    bool streaming() const
    {
        return kind == "wan-stream";
    }

    //! The role whose latent input and first output give the latent and RGB frame shapes.
    std::string firstRole() const
    {
        return streaming() ? "first" : "decode";
    }

    //! The role of a listed file (empty: not a decoder graph).
    std::string roleOf(std::string const& file) const;
};

//! The roles of a decoder kind (empty: not a kind).
std::vector<std::string> decoderRoles(std::string const& kind);

//! Throw one ArtifactError unless `graph` (the file `name`, decoder role `role`) has the
//! entry's inputs and outputs: names in order, dtypes and static dims.
void checkDecoderGraph(std::string const& name, DecoderSpec const& spec, std::string const& role, OnnxGraph const& graph);

} // namespace pomrt
