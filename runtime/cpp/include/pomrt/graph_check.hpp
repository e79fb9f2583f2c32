// The manifest's model config checked against the ONNX graph it claims to describe (issue 22),
// the C++ twin of export/artifact/graph_check.py. Every buffer pomrt allocates (latents, the
// two ping-pong states, the label range) is sized from the config; manifest.json is not
// hashed, so the graph, whose bytes are, is the ground truth.
#pragma once

#include <string>

#include "pomrt/manifest.hpp"
#include "pomrt/onnx_graph.hpp"

namespace pomrt
{

//! Throw one ArtifactError unless the manifest (config and `io`) describes `graph`, the ONNX
//! file `name`: graph IO names in order, dtypes and ranks as `io` says; `io` shapes as the
//! config derives them; every static axis of the step IO (C_in, H, W, L, C) equal to the
//! config's; the label table [num_classes + 1, width] (class models), the patch projection
//! [width, in_channels, patch, patch]; every PolyMixer node's variant/order/gate.
void checkConfigAgainstGraph(std::string const& name, Manifest const& manifest, OnnxGraph const& graph);

} // namespace pomrt
