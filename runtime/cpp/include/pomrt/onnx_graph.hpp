// The parts of an ONNX ModelProto the loader checks the manifest against (issue 22): graph
// inputs/outputs with their static dims, initializer names and dims, node op types and their
// string/int attributes. Read by a bounds-checked protobuf wire-format reader (no libprotobuf,
// no onnx headers); tensor data (raw_data, external data) is skipped, never copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pomrt
{

//! One axis of a value's shape: a static dim, or a symbol (empty: unnamed).
struct OnnxDim
{
    bool isStatic{false};
    int64_t value{0};
    std::string param;
};

//! A graph input or output (ValueInfoProto with a tensor type).
struct OnnxValue
{
    std::string name;
    int32_t elemType{0}; //!< TensorProto.DataType: 1 float, 7 int64, 10 float16
    bool hasShape{false};
    std::vector<OnnxDim> dims;
};

struct OnnxInitializer
{
    std::string name;
    std::vector<int64_t> dims;
    std::string externalLocation; //!< data_location EXTERNAL: the file holding its data
};

struct OnnxNode
{
    std::string name;
    std::string opType;
    std::string domain;
    std::map<std::string, std::string> strings; //!< attributes of type STRING
    std::map<std::string, int64_t> ints;        //!< attributes of type INT
};

struct OnnxGraph
{
    std::vector<OnnxValue> inputs;
    std::vector<OnnxValue> outputs;
    std::vector<OnnxInitializer> initializers;
    std::vector<OnnxNode> nodes;

    //! The external-data files the initializers name (each once, in first-use order).
    std::vector<std::string> externalLocations() const;
};

//! Parse the main graph of a serialised ModelProto. `where` names the file in messages.
//! Throws Error(POMRT_ERR_ARTIFACT) on malformed or truncated protobuf.
OnnxGraph parseOnnxGraph(uint8_t const* data, size_t size, std::string const& where);

} // namespace pomrt
