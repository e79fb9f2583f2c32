"""How many CPU threads a step gets when nobody says (issue 24's thread policy).

A step is a chain of a few hundred kernels, each split across the intra-op threads and
joined before the next one starts. When another process holds one of the cores, every join
waits for the thread that the scheduler parked behind it: measured on a 2-core machine, ONNX
Runtime and torch at 2 threads ran 2x to 10x slower than at 1 thread. So the default is the
number of cores *idle* when the backend is made, never more than the usable ones:

    threads = clamp(usable cores - round(1-minute load average), 1, usable cores)

(``os.sched_getaffinity`` for the usable cores, ``os.getloadavg`` for the load: the runnable
processes of the whole machine, this one's own past work included). ``OMP_NUM_THREADS``, when
set, is the user's choice and wins. ONNX Runtime's pool also stops spinning between kernels
when it has more than one thread (``session.intra_op.allow_spinning = 0``, in
``runtime/ort_backend.py``): a spinning worker burns the core another process needs.

The load is read once, at backend creation: a load that arrives later is not followed.
"""

from __future__ import annotations

import os

THREADS_ENV = "OMP_NUM_THREADS"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def idle_cores(load: float | None = None, usable: int | None = None) -> int:
    """Usable cores minus the 1-minute load average (rounded), at least 1."""
    usable = usable_cores() if usable is None else usable
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # no load average here: assume the machine is ours
            load = 0.0
    return max(1, min(usable, usable - round(load)))


def cpu_threads() -> int:
    """The default intra-op thread count of a CPU step (module docstring):
    ``OMP_NUM_THREADS`` when it is a positive integer, else the idle cores."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return idle_cores()
