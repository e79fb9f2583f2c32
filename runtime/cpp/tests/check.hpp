// The checks of the C++ unit tests (test_manifest.cpp, test_pinned.cpp): a failed CHECK prints
// file:line and the condition and the test goes on; main returns checkSummary(its name).
#pragma once

#include <cstdio>
#include <cstring>

namespace pomrt_test
{
inline int gFailures = 0;

inline void check(bool ok, char const* what, char const* file, int line)
{
    if (!ok)
    {
        char const* slash = std::strrchr(file, '/');
        std::fprintf(stderr, "%s:%d: %s\n", slash != nullptr ? slash + 1 : file, line, what);
        ++gFailures;
    }
}

//! The exit status of a test program: 0 when every check held (and it says so), else 1.
inline int checkSummary(char const* program)
{
    if (gFailures == 0)
    {
        std::printf("%s: all checks passed\n", program);
    }
    return gFailures == 0 ? 0 : 1;
}
} // namespace pomrt_test

#define CHECK(cond) ::pomrt_test::check((cond), #cond, __FILE__, __LINE__)
