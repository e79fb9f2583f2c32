// A bounds-checked reader of the protobuf wire format, enough of onnx.proto for
// include/pomrt/onnx_graph.hpp. Field numbers are onnx.proto's (ModelProto.graph = 7,
// GraphProto.node = 1 / initializer = 5 / input = 11 / output = 12, ...). Every length is
// checked against the bytes left; nothing is read past `size`; unknown fields are skipped.
#include "pomrt/onnx_graph.hpp"

#include "pomrt/error.hpp"

namespace pomrt
{
namespace
{

constexpr uint32_t kVarint = 0;
constexpr uint32_t kFixed64 = 1;
constexpr uint32_t kBytes = 2;
constexpr uint32_t kFixed32 = 5;

class Reader;

//! One field: its number, wire type, the varint value (kVarint) or the bytes (kBytes).
struct Field
{
    uint32_t number{0};
    uint32_t wire{0};
    uint64_t value{0};
    uint8_t const* begin{nullptr};
    uint8_t const* end{nullptr};
};

class Reader
{
public:
    Reader(uint8_t const* begin, uint8_t const* end, std::string const& where)
        : mPos(begin)
        , mEnd(end)
        , mWhere(where)
    {
    }

    Reader sub(Field const& f) const
    {
        if (f.wire != kBytes)
        {
            fail("a message field has the wrong wire type");
        }
        return Reader(f.begin, f.end, mWhere);
    }

    bool done() const
    {
        return mPos >= mEnd;
    }

    uint64_t varint()
    {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (mPos >= mEnd)
            {
                fail("truncated varint");
            }
            uint8_t const b = *mPos++;
            v |= static_cast<uint64_t>(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
            {
                return v;
            }
        }
        fail("varint longer than 10 bytes");
    }

    //! The next field, or false at the end of the message.
    bool next(Field& f)
    {
        if (done())
        {
            return false;
        }
        uint64_t const key = varint();
        f.number = static_cast<uint32_t>(key >> 3);
        f.wire = static_cast<uint32_t>(key & 7);
        if (f.number == 0 || (key >> 3) > 0x1fffffff)
        {
            fail("invalid field number");
        }
        switch (f.wire)
        {
        case kVarint: f.value = varint(); break;
        case kFixed64: skip(8); break;
        case kFixed32: skip(4); break;
        case kBytes:
        {
            uint64_t const len = varint();
            if (len > static_cast<uint64_t>(mEnd - mPos))
            {
                fail("a length-delimited field runs past the end of the file");
            }
            f.begin = mPos;
            f.end = mPos + len;
            mPos += len;
            break;
        }
        default: fail("unsupported wire type " + std::to_string(f.wire));
        }
        return true;
    }

    [[noreturn]] void fail(std::string const& why) const
    {
        throw artifactError(mWhere + ": not a readable ONNX model (" + why + ")");
    }

private:
    void skip(size_t n)
    {
        if (static_cast<size_t>(mEnd - mPos) < n)
        {
            fail("truncated fixed-width field");
        }
        mPos += n;
    }

    uint8_t const* mPos;
    uint8_t const* mEnd;
    std::string const& mWhere;
};

std::string text(Field const& f)
{
    return f.wire == kBytes ? std::string(reinterpret_cast<char const*>(f.begin), f.end - f.begin) : std::string();
}

//! Repeated int64, packed (one bytes field) or not (one varint per field).
void appendInts(Reader const& parent, Field const& f, std::vector<int64_t>& out)
{
    if (f.wire == kVarint)
    {
        out.push_back(static_cast<int64_t>(f.value));
        return;
    }
    Reader packed = parent.sub(f);
    while (!packed.done())
    {
        out.push_back(static_cast<int64_t>(packed.varint()));
    }
}

OnnxDim parseDim(Reader r)
{
    OnnxDim dim;
    for (Field f; r.next(f);)
    {
        if (f.number == 1 && f.wire == kVarint) // dim_value
        {
            dim.isStatic = true;
            dim.value = static_cast<int64_t>(f.value);
        }
        else if (f.number == 2) // dim_param
        {
            dim.param = text(f);
        }
    }
    return dim;
}

void parseTensorType(Reader r, OnnxValue& value)
{
    for (Field f; r.next(f);)
    {
        if (f.number == 1 && f.wire == kVarint) // elem_type
        {
            value.elemType = static_cast<int32_t>(f.value);
        }
        else if (f.number == 2) // shape: TensorShapeProto { repeated Dimension dim = 1; }
        {
            value.hasShape = true;
            Reader shape = r.sub(f);
            for (Field d; shape.next(d);)
            {
                if (d.number == 1)
                {
                    value.dims.push_back(parseDim(shape.sub(d)));
                }
            }
        }
    }
}

OnnxValue parseValueInfo(Reader r)
{
    OnnxValue value;
    for (Field f; r.next(f);)
    {
        if (f.number == 1) // name
        {
            value.name = text(f);
        }
        else if (f.number == 2) // type: TypeProto { Tensor tensor_type = 1; }
        {
            Reader type = r.sub(f);
            for (Field t; type.next(t);)
            {
                if (t.number == 1)
                {
                    parseTensorType(type.sub(t), value);
                }
            }
        }
    }
    return value;
}

//! StringStringEntryProto {key = 1, value = 2}: the value when the key is `key`.
std::string entryValue(Reader r, std::string const& key, bool& matched)
{
    std::string k;
    std::string v;
    for (Field f; r.next(f);)
    {
        if (f.number == 1)
        {
            k = text(f);
        }
        else if (f.number == 2)
        {
            v = text(f);
        }
    }
    matched = k == key;
    return v;
}

OnnxInitializer parseTensor(Reader r)
{
    OnnxInitializer tensor;
    std::string location;
    bool external = false;
    for (Field f; r.next(f);)
    {
        if (f.number == 1) // dims
        {
            appendInts(r, f, tensor.dims);
        }
        else if (f.number == 8) // name
        {
            tensor.name = text(f);
        }
        else if (f.number == 13) // external_data
        {
            bool matched = false;
            std::string const value = entryValue(r.sub(f), "location", matched);
            if (matched)
            {
                location = value;
            }
        }
        else if (f.number == 14 && f.wire == kVarint) // data_location: 1 = EXTERNAL
        {
            external = f.value == 1;
        }
    }
    if (external)
    {
        if (location.empty())
        {
            r.fail("initializer '" + tensor.name + "' has external data without a location");
        }
        tensor.externalLocation = location;
    }
    return tensor;
}

void parseAttribute(Reader r, OnnxNode& node)
{
    std::string name;
    std::string s;
    int64_t i = 0;
    bool hasS = false;
    bool hasI = false;
    for (Field f; r.next(f);)
    {
        if (f.number == 1) // name
        {
            name = text(f);
        }
        else if (f.number == 3 && f.wire == kVarint) // i
        {
            i = static_cast<int64_t>(f.value);
            hasI = true;
        }
        else if (f.number == 4) // s
        {
            s = text(f);
            hasS = true;
        }
    }
    if (hasS)
    {
        node.strings[name] = s;
    }
    if (hasI)
    {
        node.ints[name] = i;
    }
}

OnnxNode parseNode(Reader r)
{
    OnnxNode node;
    for (Field f; r.next(f);)
    {
        switch (f.number)
        {
        case 3: node.name = text(f); break;
        case 4: node.opType = text(f); break;
        case 5: parseAttribute(r.sub(f), node); break;
        case 7: node.domain = text(f); break;
        default: break;
        }
    }
    return node;
}

OnnxGraph parseGraph(Reader r)
{
    OnnxGraph g;
    for (Field f; r.next(f);)
    {
        switch (f.number)
        {
        case 1: g.nodes.push_back(parseNode(r.sub(f))); break;
        case 5: g.initializers.push_back(parseTensor(r.sub(f))); break;
        case 11: g.inputs.push_back(parseValueInfo(r.sub(f))); break;
        case 12: g.outputs.push_back(parseValueInfo(r.sub(f))); break;
        default: break;
        }
    }
    return g;
}

} // namespace

std::vector<std::string> OnnxGraph::externalLocations() const
{
    std::vector<std::string> locations;
    for (OnnxInitializer const& tensor : initializers)
    {
        if (!tensor.externalLocation.empty())
        {
            bool seen = false;
            for (auto const& l : locations)
            {
                seen = seen || l == tensor.externalLocation;
            }
            if (!seen)
            {
                locations.push_back(tensor.externalLocation);
            }
        }
    }
    return locations;
}

OnnxGraph parseOnnxGraph(uint8_t const* data, size_t size, std::string const& where)
{
    Reader model(data, data + size, where);
    bool found = false;
    OnnxGraph graph;
    for (Field f; model.next(f);)
    {
        if (f.number == 7) // ModelProto.graph (the last one wins, as in protobuf)
        {
            graph = parseGraph(model.sub(f));
            found = true;
        }
    }
    if (!found)
    {
        model.fail("no graph");
    }
    return graph;
}

} // namespace pomrt
