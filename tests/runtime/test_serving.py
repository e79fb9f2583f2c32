"""Serving with Triton: a real tritonserver on loopback, real tritonclient (issue 9).

The server tests share one server (module fixture, stopped by it) on the session's artifact;
they skip with the reason when no tritonserver or tritonclient is installed here.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from pomexport.errors import ConfigError, StateError
from pomexport.runtime.serving.repository import RepoOptions, model_config, write_repository
from pomexport.runtime.serving.slots import SlotTable

SLOTS, STEPS, IDLE_S = 4, 2, 3.0
TIMEOUT_S = 30.0  # every client request; the whole module stays far below it per call


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_slot_table_start_end_reap():
    clock = FakeClock()
    table = SlotTable(2, idle_timeout_s=5.0, clock=clock)
    assert table.start(10) == (0, False)
    assert table.start(11) == (1, False)
    with pytest.raises(StateError, match="busy"):
        table.start(12)
    assert table.start(10) == (0, True)  # a restart keeps its slot, to be reset
    assert table.end(11) == 1
    with pytest.raises(StateError, match="START"):
        table.slot(11)
    clock.now = 4.0
    assert table.slot(10) == 0  # seen at 4.0: not idle at 8.0
    clock.now = 8.0
    assert table.reap() == []
    clock.now = 9.5
    assert table.reap() == [0]
    assert table.start(12) == (1, False) and table.start(13) == (0, False)


def test_repository_refuses_bad_input(ort_artifact, tmp_path):
    artifact, _ = ort_artifact
    with pytest.raises(ConfigError, match="rebuild it with a larger --batch"):
        write_repository(artifact.root, tmp_path / "r", RepoOptions(max_streams=64))
    with pytest.raises(ConfigError, match="strategy"):
        write_repository(artifact.root, tmp_path / "r", RepoOptions(strategy="newest"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        write_repository(artifact.root, tmp_path / "full")
    assert not (tmp_path / "r").exists()


def test_model_config_strategies():
    direct = model_config(RepoOptions(strategy="direct", idle_timeout_s=2.5), 3, 16)
    assert "direct {" in direct and "max_sequence_idle_microseconds: 2500000" in direct
    oldest = model_config(RepoOptions(strategy="oldest", max_streams=6, instances=2), 3, 16)
    assert "max_candidate_sequences: 6" in oldest and "count: 2" in oldest
    assert "CONTROL_SEQUENCE_CORRID" in oldest and "max_batch_size: 6" in oldest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(ort_artifact, tmp_path_factory):
    pytest.importorskip("tritonclient.http", reason="tritonclient is not installed")
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed")
    from pomexport.runtime.serving.server import ServerError, TritonServer, find_tritonserver

    try:
        find_tritonserver(tmp_path_factory.mktemp("probe"))
    except ConfigError as e:
        pytest.skip(str(e))
    artifact, _ = ort_artifact
    repo = tmp_path_factory.mktemp("triton") / "repo"
    opts = RepoOptions(max_streams=SLOTS, steps=STEPS, idle_timeout_s=IDLE_S, threads=1)
    write_repository(artifact.root, repo, opts)
    try:
        srv = TritonServer(repo, http_port=_free_port(), grpc_port=_free_port())
    except ConfigError as e:
        pytest.skip(f"tritonserver cannot start here: {e}")
    try:
        srv.wait_ready(timeout_s=120)
    except ServerError as e:
        srv.stop()
        pytest.skip(f"tritonserver did not become ready: {e}")
    yield srv
    srv.stop()
    assert srv.process.poll() is not None


def _reference(artifact, specs, frames: int) -> np.ndarray:
    """The same videos from the local VideoGenerator (same artifact, slots, steps)."""
    from pomexport.runtime.generator import VideoGenerator
    from pomexport.runtime.loading import load_backend

    gen = VideoGenerator(load_backend(artifact.root, "ort", "cpu"), slots=SLOTS, steps=STEPS)
    for slot, spec in enumerate(specs):
        gen.start(slot, spec.label, seed=spec.seed, stream=spec.stream)
    clip = np.zeros((len(specs), frames, *gen.io.x_t.shape[1:]), dtype=np.float32)
    for frame in gen.stream(frames):
        clip[frame.slot, frame.index] = frame.latent.numpy()
    return clip


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_interleaved_streams_match_local_generator(server, ort_artifact, protocol):
    from pomexport.runtime.serving.client import StreamSpec, stream_videos

    specs = [StreamSpec(3, seed=7), StreamSpec(5, seed=7, stream=1), StreamSpec(0, seed=11)]
    url = server.url if protocol == "http" else server.grpc_url
    first = 1 if protocol == "http" else 50
    got = stream_videos(url, specs, 4, protocol, first_sequence_id=first, timeout_s=TIMEOUT_S)
    want = _reference(ort_artifact[0], specs, 4)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.abs(got[0] - got[1]).max() > 1e-2  # different streams are different videos


@pytest.mark.slow
def test_unknown_sequence_without_start_is_refused(server):
    from pomexport.runtime.serving.client import RequestError, StreamClient

    client = StreamClient(server.url, timeout_s=TIMEOUT_S)
    with pytest.raises(RequestError, match="START"):
        client.next_frame(999)
    client.close()


@pytest.mark.slow
def test_idle_sequence_is_reaped_and_its_slot_reused(server, ort_artifact):
    from pomexport.runtime.serving.client import (
        RequestError,
        StreamClient,
        StreamSpec,
        stream_videos,
    )

    client = StreamClient(server.url, timeout_s=TIMEOUT_S)
    for i in range(SLOTS):  # every slot taken by a sequence that then goes quiet
        assert client.next_frame(100 + i, StreamSpec(1, seed=i))[0] == 0
    time.sleep(IDLE_S + 1.5)
    with pytest.raises(RequestError, match="START"):
        client.next_frame(100)
    client.close()
    specs = [StreamSpec(2, seed=20 + i) for i in range(SLOTS)]
    got = stream_videos(server.url, specs, 2, first_sequence_id=200, timeout_s=TIMEOUT_S)
    np.testing.assert_allclose(got, _reference(ort_artifact[0], specs, 2), atol=1e-5, rtol=0)
