// Typed errors of the C++ runtime; the C API maps each to a pomrt_status.
#pragma once

#include <stdexcept>
#include <string>

#include "pomrt.h"

namespace pomrt
{

//! An error the runtime raises on purpose: a status code for the C API and a one-line message.
class Error : public std::runtime_error
{
public:
    Error(pomrt_status status, std::string const& message)
        : std::runtime_error(message)
        , mStatus(status)
    {
    }

    pomrt_status status() const noexcept
    {
        return mStatus;
    }

private:
    pomrt_status mStatus;
};

//! Shorthands: `throw artifactError("model.onnx: sha256 mismatch")`.
inline Error artifactError(std::string const& message)
{
    return Error(POMRT_ERR_ARTIFACT, message);
}

inline Error argumentError(std::string const& message)
{
    return Error(POMRT_ERR_INVALID_ARGUMENT, message);
}

inline Error stateError(std::string const& message)
{
    return Error(POMRT_ERR_STATE, message);
}

} // namespace pomrt
