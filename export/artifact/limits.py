"""Bounds on the work a loader does before it can refuse an artifact or a bundle (issue 22).

Without them a hostile input costs time and memory before its one-line refusal: a 4 GB
sparse file hashed in full, 300,000 empty tar members read into a list, a member declaring a
terabyte extracted. Every limit is checked from metadata (stat, tar headers, the manifest's
own numbers) before a byte of content is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from pomexport.errors import ArtifactError


@dataclass(frozen=True)
class Limits:
    """What a loader accepts. The defaults leave room for models far larger than any
    pomexport ships (an artifact holds a handful of files; a bundle a few dozen)."""

    members: int = 4096  # listed files (artifact) or tar members (bundle)
    member_bytes: int = 64 << 30  # one file
    total_bytes: int = 256 << 30  # all files together (what extraction may write)
    manifest_bytes: int = 16 << 20  # manifest.json / bundle.json
    nesting: int = 32  # JSON depth of a manifest


DEFAULT_LIMITS = Limits()


def json_depth(value: object) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion on hostile input)."""
    depth, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        depth = max(depth, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return depth


def check_json_depth(what: str, value: object, limits: Limits) -> None:
    """ArtifactError when ``value`` nests deeper than ``limits.nesting``."""
    depth = json_depth(value)
    if depth > limits.nesting:
        raise ArtifactError(f"{what}: nested {depth} levels deep (limit {limits.nesting})")


class SizeBudget:
    """Counts members and bytes against :class:`Limits`, refusing at the first excess."""

    def __init__(self, what: str, limits: Limits) -> None:
        self.what, self.limits = what, limits
        self.members = self.total = 0

    def add(self, name: str, size: int) -> None:
        """Account one member of ``size`` bytes (as declared by its metadata)."""
        limits = self.limits
        self.members += 1
        self.total += size
        if self.members > limits.members:
            raise ArtifactError(f"{self.what}: more than {limits.members} members (limit)")
        if size > limits.member_bytes:
            raise ArtifactError(
                f"{self.what}: {name!r} is {size} bytes (limit {limits.member_bytes} per file)"
            )
        if self.total > limits.total_bytes:
            raise ArtifactError(
                f"{self.what}: members add up to more than {limits.total_bytes} bytes (limit)"
            )
