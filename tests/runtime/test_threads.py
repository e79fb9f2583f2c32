"""runtime/threads.py: the default CPU thread count follows the idle cores (issue 24)."""

from __future__ import annotations

import pytest

from pomexport.runtime import threads


@pytest.mark.parametrize(
    ("load", "usable", "expected"),
    [(0.0, 2, 2), (0.4, 2, 2), (0.6, 2, 1), (1.0, 2, 1), (5.0, 2, 1), (1.2, 8, 7), (0.0, 1, 1)],
)
def test_idle_cores_are_usable_minus_load_at_least_one(load, usable, expected):
    assert threads.idle_cores(load, usable) == expected


def test_omp_num_threads_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.cpu_threads() == 3


@pytest.mark.parametrize("value", ["", "0", "two"])
def test_without_a_valid_omp_num_threads_the_idle_cores_decide(monkeypatch, value):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert threads.cpu_threads() == 3


def test_ort_sessions_with_threads_do_not_spin(monkeypatch):
    import onnxruntime as ort

    from pomexport.runtime import ort_backend

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})
    assert ort_backend.default_threads() == 2
    key = "session.intra_op.allow_spinning"
    two = ort_backend._session_options(ort, 2)
    assert two.get_session_config_entry(key) == "0"
    one = ort_backend._session_options(ort, 1)  # one thread: ORT's own default (no pool)
    with pytest.raises(Exception, match=key):
        one.get_session_config_entry(key)
