// The rectified-flow time schedule of pomexport/runtime/sampler.py, in the same order of
// operations: linspace(1, 0) in double, shift in double, round to float.
#include "pomrt/schedule.hpp"

#include <cmath>
#include <string>

#include "pomrt/error.hpp"

namespace pomrt
{

double shiftTime(double t, double shift)
{
    return shift * t / (1.0 + (shift - 1.0) * t);
}

std::vector<float> timeSchedule(int32_t steps, double shift)
{
    if (steps < 1)
    {
        throw argumentError("steps must be >= 1, got " + std::to_string(steps));
    }
    if (!(shift > 0.0) || !std::isfinite(shift))
    {
        throw argumentError("shift must be a finite number > 0, got " + std::to_string(shift));
    }
    std::vector<float> times(static_cast<size_t>(steps) + 1);
    double const step = -1.0 / steps;
    int32_t const half = (steps + 1) / 2;
    for (int32_t i = 0; i <= steps; ++i)
    {
        // torch.linspace fills the first half from the start and the second from the end,
        // so both endpoints are exact; do the same.
        double t = i < half ? 1.0 + step * i : 0.0 - step * (steps - i);
        if (shift != 1.0)
        {
            t = shiftTime(t, shift);
        }
        times[static_cast<size_t>(i)] = static_cast<float>(t);
    }
    return times;
}

} // namespace pomrt
