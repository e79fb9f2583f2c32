"""Subprocess for the crash-safety tests: ``build()`` in a loop with a fast stand-in exporter.

    python build_worker.py OUT NAME LOOPS FLOATS [INTERVALS_FILE]

The real ``pomexport.runtime.build.build`` runs (lock, staging directory, swap); only the
torch -> ONNX trace (tens of seconds) is replaced by writing a toy graph of FLOATS weights
through the real writers (``save_onnx`` with external data, ``write_manifest``). Prints
``ready`` once imported, so the parent's random kill delays all fall inside builds.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import hardening_corpus as corpus  # noqa: E402

from pomexport.export import artifact  # noqa: E402


def main(out: str, name: str, loops: int, floats: int, intervals: str | None) -> None:
    artifact.EXTERNAL_DATA_THRESHOLD = 1024  # weights go to model.onnx.data, as big models do

    def export_model(source, staging, precision, flavor, batch, progress):
        start = time.time()
        artifact.save_onnx(corpus.toy_model(floats), Path(staging) / artifact.PORTABLE)
        artifact.write_manifest(staging, corpus.manifest(source))
        if intervals:
            with open(intervals, "a") as f:
                f.write(f"{start} {time.time()} {source}\n")

    # Stand in for the exporter module before build() imports it (skips importing torch.onnx).
    sys.modules["pomexport.export.api"] = types.SimpleNamespace(export_model=export_model)
    from pomexport.runtime.build import build

    print("ready", flush=True)
    for i in range(loops):
        build(f"{name}-{i}", out, precision="fp32", backend="ort")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], int(args[2]), int(args[3]), args[4] if len(args) > 4 else None)
