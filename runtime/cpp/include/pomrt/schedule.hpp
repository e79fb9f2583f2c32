// Sampler math shared by the CPU API and the GPU frame loop (pomexport/runtime/sampler.py).
#pragma once

#include <cstdint>
#include <vector>

namespace pomrt
{

//! SD3 time shift t' = s t / (1 + (s - 1) t); keeps 0 -> 0 and 1 -> 1.
double shiftTime(double t, double shift);

//! steps + 1 decreasing fp32 times from 1 to 0: uniform in double, shifted when shift != 1,
//! then rounded to float (the order of time_schedule in sampler.py). Throws on bad input.
std::vector<float> timeSchedule(int32_t steps, double shift);

} // namespace pomrt
