"""Serving with Triton: a real tritonserver on loopback, real tritonclient (issue 9).

The server tests share one server (module fixture, stopped by it) on the session's artifact.
tritonclient and the tritonserver of the nvidia-pytriton wheel are installed by
scripts/test.sh (the README's setup), so a missing one, or a server that does not start, is
a failure, never a skip (issue 23): scripts/test.sh runs this module from the bare
interpreter and again from a fresh virtualenv.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pomexport.errors import ConfigError, StateError
from pomexport.runtime.serving.repository import (
    MODEL_NAME,
    RepoOptions,
    model_config,
    write_repository,
)
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
def repo(ort_artifact, tmp_path_factory):
    """The repository every server test serves (the session's artifact, SLOTS streams)."""
    artifact, _ = ort_artifact
    repo = tmp_path_factory.mktemp("triton") / "repo"
    opts = RepoOptions(max_streams=SLOTS, steps=STEPS, idle_timeout_s=IDLE_S, threads=1)
    write_repository(artifact.root, repo, opts)
    return repo


@pytest.fixture(scope="module")
def server(repo):
    """A ready server on ``repo``; a server that does not start fails the tests using it
    (ServerError names the cause and the kept log)."""
    import tritonclient.grpc  # noqa: F401  (the serve extra: failing here is a setup error)
    import tritonclient.http  # noqa: F401

    from pomexport.runtime.serving.server import TritonServer

    srv = TritonServer(repo, http_port=_free_port(), grpc_port=_free_port())
    try:
        srv.wait_ready(timeout_s=120)
        yield srv
    finally:
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
    specs.append(StreamSpec(7, seed=3, stream=2))  # SLOTS = 4 interleaved streams
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


def _implicit_session(artifact):
    import onnxruntime as ort

    from pomexport.runtime.serving.implicit_state import implicit_state_model

    cfg = artifact.config
    model = implicit_state_model(
        artifact.onnx_path("portable"),
        cfg.depth,
        cfg.state_width,
        cfg.in_channels,
        cfg.input_size,
        cfg.tokens_per_frame,
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])


def test_implicit_state_frame_loop_matches_local_generator(ort_artifact):
    """What Triton does with `sequence_batching.state` (each output state fed back as the next
    input) and the BLS loop (Euler steps with COMMIT=0, then the t=0 step with COMMIT=1),
    run on ONNX Runtime: the frames equal the local generator's, and denoising steps leave
    the state alone."""
    from pomexport.runtime.generator import frame_noise
    from pomexport.runtime.sampler import time_schedule
    from pomexport.runtime.serving.client import StreamSpec

    artifact, _ = ort_artifact
    cfg, session = artifact.config, _implicit_session(artifact)
    specs = [StreamSpec(3, seed=7), StreamSpec(5, seed=7, stream=1)]
    b, frames, times = len(specs), 3, [float(t) for t in time_schedule(STEPS)]
    state = {
        "STATE_IN": np.zeros((b, cfg.depth, cfg.state_width), np.float32),
        "COUNT_IN": np.zeros((b, 1), np.float32),
        "FRAME_IN": np.zeros((b, 1), np.int64),
    }
    labels = np.array([[s.label] for s in specs], np.int64)
    got = np.zeros((b, frames, cfg.in_channels, cfg.input_size, cfg.input_size), np.float32)

    def step(x, t, commit):
        feed = dict(state, X_T=x, T=np.full((b, 1), t, np.float32), LABEL=labels)
        v, *outs = session.run(None, dict(feed, COMMIT=np.full((b, 1), commit, np.float32)))
        return v, dict(zip(state, outs, strict=True))

    for f in range(frames):
        x = np.stack([frame_noise(s.seed, s.stream, f, got.shape[2:]) for s in specs])
        for t, t_next in zip(times[:-1], times[1:], strict=True):
            v, kept = step(x, t, 0.0)
            assert all(np.array_equal(kept[k], state[k]) for k in state)
            x = x + (t_next - t) * v
        state = step(x, 0.0, 1.0)[1]
        got[:, f] = x
    assert state["FRAME_IN"].ravel().tolist() == [frames] * b
    assert state["COUNT_IN"].ravel().tolist() == [frames * cfg.tokens_per_frame] * b
    want = _reference(artifact, specs, frames)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_gpu_repository_has_the_implicit_state_models(ort_artifact, tmp_path):
    import onnx

    artifact, _ = ort_artifact
    opts = RepoOptions(max_streams=4, instances=2, kind="KIND_GPU", backend="ort-cuda")
    write_repository(artifact.root, tmp_path / "repo", opts)
    step = (tmp_path / "repo" / "pomdit_step" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in step and 'input_name: "STATE_IN"' in step
    assert "count: 2, kind: KIND_GPU" in step
    onnx.checker.check_model(str(tmp_path / "repo" / "pomdit_step" / "1" / "model.onnx"))
    frames = (tmp_path / "repo" / "pomdit_frames" / "config.pbtxt").read_text()
    assert 'name: "pomdit_frames"' in frames and '"step_model"' in frames
    with pytest.raises(ConfigError, match="CFG"):
        write_repository(
            artifact.root, tmp_path / "r2", RepoOptions(max_streams=2, kind="KIND_GPU", cfg_scale=2)
        )


def test_no_tritonserver_is_one_clear_error(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from pomexport.cli.main import cli
    from pomexport.runtime.serving import server

    monkeypatch.delenv("POMEXPORT_TRITONSERVER", raising=False)
    monkeypatch.setattr(server, "_pytriton_root", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no tritonserver on PATH either
    with pytest.raises(ConfigError, match="no tritonserver found"):
        server.find_tritonserver(tmp_path)
    monkeypatch.setenv("POMEXPORT_TRITONSERVER", str(tmp_path / "missing"))
    result = CliRunner().invoke(cli, ["serve", str(tmp_path)])
    assert result.exit_code == 1
    assert "Error: POMEXPORT_TRITONSERVER=" in result.output and "Traceback" not in result.output


# The end of a real log (the tritonserver of nvidia-pytriton 0.7, a model importing a missing
# module; the status table and most informational lines cut).
FAILED_LOG = "\n".join(
    [
        'I1207 10:52:42.109731 4866 cuda_memory_manager.cc:117] "CUDA memory pool disabled"',
        'E1207 10:52:42.109805 4866 server.cc:241] "CudaDriverHelper has not been initialized."',
        'I1207 10:52:42.110825 4866 model_lifecycle.cc:472] "loading: pomdit_stream:1"',
        "I1207 10:52:42.216218 4874 pb_stub.cc:298]  Failed to initialize Python stub for "
        "auto-complete: ModuleNotFoundError: No module named 'pomexport'",
        "",
        "At:",
        "  /tmp/r23/repo/pomdit_stream/1/model.py(5): <module>",
        "",
        "E1207 10:52:42.219039 4866 model_lifecycle.cc:642] \"failed to load 'pomdit_stream' "
        "version 1: Internal: ModuleNotFoundError: No module named 'pomexport'\\n\\nAt:\\n  "
        '/tmp/r23/repo/pomdit_stream/1/model.py(5): <module>\\n"',
        "I1207 10:52:42.219086 4866 model_lifecycle.cc:777] \"failed to load 'pomdit_stream'\"",
        "+------------------+---------+",
        "| Model            | Version |",
        'I1207 10:52:42.219465 4866 server.cc:345] "Timeout 10: Found 0 live models"',
        "error: creating server: Internal - failed to load all models",
    ]
)


def test_failure_summary_is_the_model_load_error():
    from pomexport.runtime.serving.server_log import failure_summary

    assert failure_summary(FAILED_LOG) == (
        "failed to load 'pomdit_stream' version 1: Internal: ModuleNotFoundError: "
        "No module named 'pomexport'; error: creating server: Internal - failed to load all models"
    )
    assert "no error in the log" in failure_summary("I0101 starting\nkilled\n")


def _serve(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """``pomexport serve`` as a user runs it (own process, this interpreter)."""
    cli = "from pomexport.cli.main import main; main()"
    ports = ["--http-port", str(_free_port()), "--grpc-port", str(_free_port())]
    cmd = [sys.executable, "-c", cli, "serve", str(repo), *ports, "--ready-timeout-s", "120"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_serve_names_the_module_a_broken_model_misses(repo, tmp_path):
    """A model that cannot load: `pomexport serve` exits 1 with one error line naming the
    missing module and the log it keeps (--log-file, else a temporary file)."""
    broken = tmp_path / "repo"
    shutil.copytree(repo, broken)
    model = broken / MODEL_NAME / "1" / "model.py"
    model.write_text(model.read_text() + "\nimport pomexport_no_such_module  # noqa\n")
    log = tmp_path / "logs" / "triton.log"
    for args in (["--log-file", str(log)], []):
        done = _serve(broken, *args)
        assert done.returncode == 1, done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and done.stderr.rstrip().endswith(errors[0]), done.stderr
        assert "No module named 'pomexport_no_such_module'" in errors[0]
        assert "pomexport serve --log-file" in errors[0]
        kept = Path(re.search(r"server log kept at (\S+);", errors[0])[1])
        assert kept == log or not args
        assert "pomexport_no_such_module" in kept.read_text()
        kept.unlink()


@pytest.mark.slow
def test_stub_environment_sees_exactly_this_environment(server):
    """The stub's interpreter imports this pomexport and numpy < 2, and sees no site-packages
    but its own and this environment's (a virtualenv's base interpreter's are not ours)."""
    from pomexport.runtime.serving import stub_env

    if server.stub_env is None:  # numpy < 2 here: the stub runs this environment itself
        assert not stub_env._needs_env()
        return
    recorded = json.loads((server.stub_env / stub_env._MARKER).read_text())
    assert recorded == stub_env.environment_key()
    probe = "import json, numpy, pomexport, sys; print(json.dumps([numpy.__version__, "
    probe += "pomexport.__file__, sys.path]))"
    python = server.stub_env / "bin" / "python"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True)
    numpy_version, module, path = json.loads(done.stdout)
    assert numpy_version.startswith("1.")
    import pomexport

    assert Path(module).resolve() == Path(pomexport.__file__).resolve()
    ours = stub_env.site_dirs()
    assert [p for p in path if p in ours] == ours
    sites = [p for p in path if p.endswith("-packages") and not p.startswith(str(server.stub_env))]
    assert sorted(set(sites)) == sorted(ours)


def test_stub_environment_is_keyed_by_the_environment(tmp_path, monkeypatch):
    """Another environment gets another cache; a cache recorded for another one is rebuilt,
    a matching one reused (creation itself is what the server tests exercise)."""
    from pomexport.runtime.serving import stub_env

    monkeypatch.delenv("POMEXPORT_TRITON_ENV", raising=False)
    key = stub_env.environment_key()
    assert key["site_dirs"] and key["prefix"] == str(Path(sys.prefix).resolve())
    venv = "/elsewhere/venv"
    other = dict(key, prefix=venv, site_dirs=[f"{venv}/lib/python3/site-packages"])
    assert stub_env.default_location(other) != stub_env.default_location(key)
    target = tmp_path / "stub"
    (target / "bin").mkdir(parents=True)
    (target / "bin" / "python").write_text("")
    (target / "pyvenv.cfg").write_text("")
    (target / stub_env._MARKER).write_text(json.dumps(other))
    built = []
    monkeypatch.setattr(stub_env, "_needs_env", lambda: True)
    monkeypatch.setattr(stub_env, "_create", lambda *a: built.append(a[:2]))
    assert stub_env.stub_bin(target) == target / "bin" and built == [(target, key)]
    (target / stub_env._MARKER).write_text(json.dumps(key))
    assert stub_env.stub_bin(target) == target / "bin" and len(built) == 1
    (tmp_path / "mine" / "data").mkdir(parents=True)  # not ours: never replaced
    with pytest.raises(ConfigError, match="not a Triton stub environment"):
        stub_env.stub_bin(tmp_path / "mine")
    assert (tmp_path / "mine" / "data").is_dir() and len(built) == 1


def test_serve_repo_cli_writes_the_repository(ort_artifact, tmp_path):
    from click.testing import CliRunner

    from pomexport.cli.main import cli

    artifact, _ = ort_artifact
    out = tmp_path / "repo"
    args = ["serve-repo", str(artifact.root), "--out", str(out), "--max-streams", "2"]
    result = CliRunner().invoke(cli, [*args, "--strategy", "direct", "--idle-timeout-s", "5"])
    assert result.exit_code == 0, result.output
    config = (out / "pomdit_stream" / "config.pbtxt").read_text()
    assert "direct {" in config and "max_batch_size: 2" in config
    assert (out / "pomdit_stream" / "1" / "artifact" / "manifest.json").is_file()
    result = CliRunner().invoke(cli, [*args])  # out is not empty now
    assert result.exit_code == 1 and "not empty" in result.output


def test_advance_runs_only_the_given_slots(make_model):
    """VideoGenerator.advance (what the stream model calls per batch): slots advanced in any
    grouping produce the frames of a plain run; parked slots keep state and position."""
    import torch

    from pomexport.runtime.generator import VideoGenerator
    from pomexport.runtime.torch_backend import TorchBackend

    backend = TorchBackend(make_model("moments"), "cpu")
    want = VideoGenerator(backend, slots=3, steps=2).run([1, 2, 3], frames=3, seed=5)
    gen = VideoGenerator(backend, slots=3, steps=2)
    for slot in range(3):
        gen.start(slot, slot + 1, seed=5, stream=slot)
    got = torch.zeros_like(want)
    for group in ([0], [0, 2], [1], [2, 1, 0], [1, 2]):
        for frame in gen.advance(group):
            got[frame.slot, frame.index] = frame.latent
    assert [s.frame for s in gen.slots] == [3, 3, 3]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    with pytest.raises(StateError):
        gen.reset(1)
        gen.advance([1])
