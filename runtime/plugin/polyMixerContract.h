/*
 * The PolyMixer op contract as seen from C++ (docs/design.md §2).
 *
 * These strings mirror pomexport/export/contract.py, the one source of truth; the test
 * tests/runtime/test_plugin_compile.py parses this header and fails if any value drifts.
 * Keep every value a plain string or integer literal on one line so that test can read it.
 */
#ifndef POMEXPORT_POLY_MIXER_CONTRACT_H
#define POMEXPORT_POLY_MIXER_CONTRACT_H

#include <cstdint>

namespace pomexport
{
namespace contract
{
// The op and the plugin that implements it.
constexpr char const* kDOMAIN = "pomexport";
constexpr char const* kOP_TYPE = "PolyMixer";
constexpr int32_t kOP_VERSION = 1;
constexpr char const* kPLUGIN_NAME = "PolyMixer";
constexpr char const* kPLUGIN_VERSION = "1";
constexpr char const* kPLUGIN_NAMESPACE = "pomexport";

// Attribute names (ONNX attributes == plugin fields) and their defaults.
constexpr char const* kATTR_VARIANT = "variant";
constexpr char const* kATTR_ORDER = "order";
constexpr char const* kATTR_GATE = "gate";
constexpr char const* kATTR_SEL_HEADS = "sel_heads";
constexpr char const* kDEFAULT_VARIANT = "moments";
constexpr int32_t kDEFAULT_ORDER = 2;
constexpr char const* kDEFAULT_GATE = "sigmoid";
constexpr int32_t kDEFAULT_SEL_HEADS = 0;

// Attribute values (pomexport/models/polynomial.py: VARIANTS, GATES).
constexpr char const* kVARIANT_MOMENTS = "moments";
constexpr char const* kVARIANT_POWERS = "powers";
constexpr char const* kGATE_SIGMOID = "sigmoid";
constexpr char const* kGATE_HARDSIGMOID = "hardsigmoid";

// I/O positions: inputs h, g, state, count, coeff (coeff only for "powers"); outputs y, state_out.
constexpr int32_t kINPUT_H = 0;
constexpr int32_t kINPUT_G = 1;
constexpr int32_t kINPUT_STATE = 2;
constexpr int32_t kINPUT_COUNT = 3;
constexpr int32_t kINPUT_COEFF = 4;
constexpr int32_t kOUTPUT_Y = 0;
constexpr int32_t kOUTPUT_STATE = 1;

// The orders the kernels are instantiated for (a template parameter each).
constexpr int32_t kMIN_ORDER = 1;
constexpr int32_t kMAX_ORDER = 4;
} // namespace contract
} // namespace pomexport

#endif // POMEXPORT_POLY_MIXER_CONTRACT_H
