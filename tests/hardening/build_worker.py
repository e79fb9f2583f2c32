"""Subprocess for the crash-safety tests: ``build()`` in a loop with a fast stand-in exporter.

    python build_worker.py OUT NAME LOOPS FLOATS [INTERVALS_FILE]
    python build_worker.py OUT NAME serve FLOATS

The real ``pomexport.export.pipeline.build`` runs (lock, staging directory, swap); only the
torch -> ONNX trace (tens of seconds) is replaced by writing a toy graph of FLOATS weights
through the real writers (into the build's draft as ``export_model`` does, ``save_onnx``
with external data, the draft's manifest, committed once by the build). Prints
``ready`` once imported, so the parent's random kill delays all fall inside builds.

``serve``: import once, then for each stdin line ``LOOPS TAG`` fork a child that runs LOOPS
builds named ``NAME-TAG-i``, print its pid, and once it is gone (finished, or SIGKILLed by
the parent) print its wait status. Ten kills then cost ten forks, not ten torch imports.
"""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import hardening_corpus as corpus  # noqa: E402

from pomexport.export import artifact, onnx_files  # noqa: E402


def main(out: str, name: str, loops: int, floats: int, intervals: str | None) -> None:
    onnx_files.EXTERNAL_DATA_THRESHOLD = 1024  # weights go to model.onnx.data, as big models do

    def export_model(source, draft, precision, flavor, batch, progress):
        start = time.time()
        # export_model writes into the build's draft; the build commits it.
        onnx_files.save_onnx(corpus.toy_model(floats), draft.target(artifact.PORTABLE))
        draft.manifest = corpus.manifest(source)
        if intervals:
            with open(intervals, "a") as f:
                f.write(f"{start} {time.time()} {source}\n")

    # Stand in for the exporter module before build() imports it (skips importing torch.onnx).
    sys.modules["pomexport.export.api"] = types.SimpleNamespace(export_model=export_model)
    from pomexport.export.pipeline import build

    print("ready", flush=True)
    if loops >= 0:
        for i in range(loops):
            build(f"{name}-{i}", out, precision="fp32", backend="ort")
        return
    for line in sys.stdin:
        count, tag = line.split()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                for i in range(int(count)):
                    build(f"{name}-{tag}-{i}", out, precision="fp32", backend="ort")
                status = 0
            finally:
                os._exit(status)
        print(pid, flush=True)
        print(os.waitpid(pid, 0)[1], flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    loops = -1 if args[2] == "serve" else int(args[2])
    main(args[0], args[1], loops, int(args[3]), args[4] if len(args) > 4 else None)
