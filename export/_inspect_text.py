"""The text form of an :class:`~pomexport.export.inspect.InspectReport` (what
``pomexport inspect`` prints without ``--json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pomexport.export.inspect import InspectReport, PrecisionMix


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _flops(n: int) -> str:
    for scale, unit in ((1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP"), (1e3, "kFLOP")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} FLOP"


def _io_lines(report: InspectReport) -> list[str]:
    lines = [f"IO contract ({report.model_file})"]
    for arrow, tensors in (("in ", report.inputs), ("out", report.outputs)):
        for t in tensors:
            dims = "?" if t.shape is None else "[" + ", ".join(str(d) for d in t.shape) + "]"
            lines.append(f"  {arrow} {t.name:<14} {dims:<22} {t.dtype}")
    return lines


def _mix_lines(mix: PrecisionMix) -> list[str]:
    if not mix.total:
        return [f"Precision mix (batch {mix.batch}): no MatMul/Gemm/Conv with known shapes"]
    parts = ", ".join(f"{k} {v:.1%}" for k, v in sorted(mix.shares.items(), key=lambda x: -x[1]))
    line = f"Precision mix (batch {mix.batch}): {parts} of {_flops(mix.total)}"
    if mix.unresolved:
        line += f" ({len(mix.unresolved)} GEMM(s) with unknown shapes not counted)"
    return [line]


def _grouped(findings: list) -> list[str]:
    """One line per distinct (severity, version, op, message): the first one and a count."""
    groups: dict[tuple, list] = {}
    for f in findings:
        groups.setdefault((f.severity, f.trt_version, f.op, f.message), []).append(f)
    lines = []
    for same in groups.values():
        more = f" (x{len(same)})" if len(same) > 1 else ""
        lines.append(f"{same[0]}{more}")
    return lines


def _lint_lines(report: InspectReport, max_findings: int) -> list[str]:
    lines = ["TensorRT lint"]
    for name, lint in report.lint.items():
        counts = " | ".join(
            f"{v}: {lint.count('error', v)} errors, {lint.count('warning', v)} warnings"
            for v in lint.trt_versions
        )
        lines.append(f"  {name}: {counts}")
        grouped = _grouped(lint.errors + lint.warnings)
        lines += [f"    {line}" for line in grouped[:max_findings]]
        if len(grouped) > max_findings:
            lines.append(f"    ... {len(grouped) - max_findings} more (--json lists every finding)")
    return lines


def format_report(report: InspectReport, max_findings: int) -> str:
    head = f"{report.source} ({report.kind})"
    if report.manifest:
        m = report.manifest
        head += f": {m.get('model')}, {m.get('precision')}, {m.get('variant')}"
    ops = ", ".join(f"{op} {n}" for op, n in report.op_histogram.items())
    files = ", ".join(f"{name} {_size(n)}" for name, n in report.files.items())
    lines = [head, *_io_lines(report)]
    lines.append(f"Ops ({sum(report.op_histogram.values())} nodes): {ops}")
    if report.functions:
        lines.append(f"Local functions: {', '.join(report.functions)}")
    lines += _mix_lines(report.precision)
    lines.append(f"Files ({_size(report.total_bytes)}): {files}")
    lines += _lint_lines(report, max_findings)
    return "\n".join(lines)
