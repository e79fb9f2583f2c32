"""runtime/threads.py: the default CPU thread counts (issue 24's thread policy)."""

from __future__ import annotations

import pytest

from pomexport.runtime import threads


@pytest.mark.parametrize(
    ("busy", "usable", "expected"),
    [(0.0, 2, 2), (0.4, 2, 2), (0.6, 2, 1), (1.0, 2, 1), (5.0, 2, 1), (1.2, 8, 7), (0.0, 1, 1)],
)
def test_idle_cores_are_usable_minus_busy_at_least_one(busy, usable, expected):
    assert threads.idle_cores(busy, usable) == expected


def _stat(monkeypatch, before: list[int], after: list[int], cores: int = 2) -> None:
    samples = iter([before, after])
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: cores)


def test_niced_work_does_not_count_as_busy(monkeypatch):
    # user nice system idle iowait irq softirq steal: one core niced, one core user + system
    _stat(monkeypatch, [0] * 8, [40, 100, 10, 50, 0, 0, 0, 0])
    assert threads.busy_cores() == pytest.approx(0.5)
    _stat(monkeypatch, [0] * 8, [40, 100, 10, 50, 0, 0, 0, 0])
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.idle_cores() == 2  # round(0.5) = 0 busy: both cores


def test_a_busy_core_leaves_one_thread(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    _stat(monkeypatch, [0] * 8, [100, 0, 0, 100, 0, 0, 0, 0])  # one of two cores in user time
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.cpu_threads() == 1


def test_without_proc_stat_the_load_average_decides(monkeypatch):
    def unreadable():
        raise OSError("no /proc/stat")

    monkeypatch.setattr(threads, "_cpu_times", unreadable)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    assert threads.busy_cores() is None
    assert threads.idle_cores(usable=4) == 1


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("", None), ("0", None), ("x", None)])
def test_omp_num_threads_wins_when_valid(monkeypatch, value, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    assert threads.cpu_threads() == (expected or 3)


def test_ort_sessions_with_threads_do_not_spin(monkeypatch):
    import onnxruntime as ort

    from pomexport.runtime import ort_backend

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    assert ort_backend.default_threads() == 2
    key = "session.intra_op.allow_spinning"
    assert ort_backend._session_options(ort, 2).get_session_config_entry(key) == "0"
    one = ort_backend._session_options(ort, 1)  # one thread: ORT's own default (no pool)
    with pytest.raises(Exception, match=key):
        one.get_session_config_entry(key)
