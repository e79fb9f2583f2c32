// The one place C API calls turn C++ exceptions into status codes and the thread-local message.
#pragma once

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "pomrt.h"
#include "pomrt/error.hpp"

namespace pomrt
{
namespace capi
{

//! Record `message` as this thread's last error (empty: success).
void setLastError(std::string message);

//! Copy a message into a caller buffer, truncated and always NUL-terminated.
inline void copyMessage(std::string const& message, char* buffer, size_t length)
{
    if (buffer != nullptr && length > 0)
    {
        size_t const n = message.size() < length - 1 ? message.size() : length - 1;
        std::memcpy(buffer, message.data(), n);
        buffer[n] = '\0';
    }
}

//! Run `body` (returns nothing or throws); map every exception to a status and the message.
template <typename Body>
pomrt_status guarded(Body&& body) noexcept
{
    try
    {
        body();
        setLastError({});
        return POMRT_OK;
    }
    catch (Error const& e)
    {
        setLastError(e.what());
        return e.status();
    }
    catch (std::bad_alloc const&)
    {
        setLastError("out of host memory");
        return POMRT_ERR_INTERNAL;
    }
    catch (std::exception const& e)
    {
        setLastError(std::string("internal error: ") + e.what());
        return POMRT_ERR_INTERNAL;
    }
    catch (...)
    {
        setLastError("internal error: unknown exception");
        return POMRT_ERR_INTERNAL;
    }
}

inline void requireNonNull(void const* pointer, char const* what)
{
    if (pointer == nullptr)
    {
        throw argumentError(std::string(what) + " is NULL");
    }
}

} // namespace capi
} // namespace pomrt
