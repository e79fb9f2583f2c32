"""Every adversarial corpus case is refused by its loader with one clear ArtifactError that
names the offending entry, and nothing outside the target directory is written."""

from __future__ import annotations

import hardening_corpus as corpus
import pytest

from pomexport.errors import ArtifactError


@pytest.mark.parametrize("case", list(corpus.ALL_CASES))
def test_case_refused(tmp_path, case):
    tmp = corpus.world(tmp_path)
    built = corpus.ALL_CASES[case](tmp)
    before = corpus.snapshot(tmp / "outside")
    with pytest.raises(ArtifactError, match=built.match) as info:
        built.load()
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert corpus.snapshot(tmp / "outside") == before  # nothing written outside
    assert not corpus.canary_path(tmp).exists()
    dest = tmp / "dest"
    assert not dest.exists() or not any(dest.iterdir())  # bundles: nothing extracted


def test_corpus_size():
    assert len(corpus.ALL_CASES) >= 20


def test_valid_artifact_loads(tmp_path):
    """The corpus starts from an artifact the loader accepts (so each refusal is the case's)."""
    from pomexport.export.artifact import load_artifact

    root = corpus.write_artifact(tmp_path / "art")
    (root / ".manifest.json.tmp").write_text("dot-files (interrupted writes) are ignored")
    assert set(load_artifact(root).files) == {"model.onnx", corpus.DATA}


def test_canary_pickle_is_live(tmp_path):
    """Control: loaded without weights_only, the corpus .pt runs its payload (in tmp_path)."""
    import torch

    tmp = corpus.world(tmp_path)
    corpus.pt_pickle_canary(tmp)
    torch.load(tmp / "evil.pt", weights_only=False)
    assert corpus.canary_path(tmp).read_text() == "pwned"


def test_unswapped_artifact_runs_from_verified_bytes(tmp_path):
    """Control for the swap cases: the same artifact, untouched, gets its ONNX Runtime session
    (its weights are external: the session comes from a private copy, removed afterwards)."""
    import tempfile
    from pathlib import Path

    from pomexport.runtime.ort_backend import OrtBackend

    root = corpus.write_artifact(tmp_path / "art")
    before = set(Path(tempfile.gettempdir()).glob("pomexport-verified-*"))
    backend = OrtBackend(root, threads=1)
    assert [i.name for i in backend.session.get_inputs()][0] == "x_t"
    assert set(Path(tempfile.gettempdir()).glob("pomexport-verified-*")) == before
