"""How many CPU threads a step gets when nobody says (issue 24's thread policy).

A step is a chain of a few hundred kernels, each split across the intra-op threads and
joined before the next one starts. When another process holds a core, a join waits for the
thread the scheduler parked behind it. So the default is the cores *idle* when the backend
is made: usable cores minus the cores busy at normal priority, sampled over 0.1 s from
``/proc/stat`` (user + system + irq + softirq + steal; niced work yields to us and does not
count), at least 1; without ``/proc/stat``, the 1-minute load average stands for the busy
cores. ``OMP_NUM_THREADS``, when set, is the user's choice and wins. With more than one
thread ONNX Runtime's pool does not spin between kernels (``runtime/ort_backend.py``).

Measured on the 2-core machine of issue 24 (S/2 fp32 step, batch 1, 3 rounds in one
process; README "Step roofline (CPU)"), time at 2 threads over time at 1 thread:

| around the step | ORT, spinning (before) | ORT, no spinning | torch | this policy |
| --- | --- | --- | --- | --- |
| niced work only | 0.60 | 0.63 | 0.67 | 2 threads |
| one core held by a busy process | 1.50 | 1.22 | 1.96 | 1 thread |
| both cores held | 0.72 | 0.75 | 1.34 | 1 thread |

(an earlier run with one core held gave ORT 1.13 spinning and 0.78 without: 2 threads are
not reliably faster there, 1 thread is never slower). The load is read once, at backend
creation: a load that arrives later is not followed.
"""

from __future__ import annotations

import os
import time

THREADS_ENV = "OMP_NUM_THREADS"
_WINDOW_S = 0.1


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:9]]


def busy_cores(window_s: float = _WINDOW_S) -> float | None:
    """Cores of the machine kept busy at normal priority over ``window_s`` (``/proc/stat``:
    user + system + irq + softirq + steal, not nice), or None where it cannot be read."""
    try:
        before = _cpu_times()
        time.sleep(window_s)
        after = _cpu_times()
    except (OSError, ValueError):
        return None
    user, _nice, system, idle, iowait, irq, softirq, steal = (
        b - a for a, b in zip(before, after, strict=True)
    )
    total = user + _nice + system + idle + iowait + irq + softirq + steal
    if total <= 0:
        return None
    return (user + system + irq + softirq + steal) / total * (os.cpu_count() or 1)


def idle_cores(busy: float | None = None, usable: int | None = None) -> int:
    """Usable cores minus the busy ones (rounded), at least 1; ``busy`` defaults to
    :func:`busy_cores`, else the 1-minute load average."""
    usable = usable_cores() if usable is None else usable
    if busy is None:
        busy = busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:  # no load average either: assume the machine is ours
            busy = 0.0
    return max(1, min(usable, usable - round(busy)))


def _from_env() -> int | None:
    value = os.environ.get(THREADS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def cpu_threads() -> int:
    """The default intra-op threads of a CPU step (ONNX Runtime and torch):
    ``OMP_NUM_THREADS`` when it is a positive integer, else the idle cores."""
    return _from_env() or idle_cores()
