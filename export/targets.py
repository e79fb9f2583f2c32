"""Deploy targets of ``pomexport package``: the software stack a bundle is built against.

A bundle carries sources, not binaries: the plugin and the C++ runtime are compiled and the
engine is built on the device (``build.sh``). A target therefore only fixes what that build
needs: the CUDA architectures to compile for, the TensorRT and CUDA versions the sources are
checked against, and the builder workspace cap.

Versions: JetPack 6.x ships TensorRT 10.3 and CUDA 12.6 (Orin, sm_87); JetPack 7.2.2+ ships
TensorRT 11.4.1 (Orin sm_87, Thor sm_110). The x86 rows are our defaults: TensorRT 10.3 with
CUDA 12.6 (the oldest stack the plugin and runtime are compile-checked against) and TensorRT
11.4.1 with CUDA 13, for Ampere to Hopper (trt10) and Ampere to Blackwell (trt11; CUDA 13
compiles sm_100/sm_120).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pomexport.errors import ConfigError


@dataclass(frozen=True)
class DeployTarget:
    """One ``--target`` of ``pomexport package``.

    ``sm``: CUDA architectures the device build compiles for (CMAKE_CUDA_ARCHITECTURES);
    ``workspace_mib``: the default cap of the TensorRT builder's workspace
    (``trtexec --memPoolSize=workspace:N``; 0 = TensorRT's default, the device memory). On
    Jetson, CPU and GPU share the memory, so the cap is what keeps an engine build from
    being OOM-killed on an Orin Nano 8 GB (its value in ``runtime/measure/plan.py``).
    """

    name: str
    platform: str  # "jetson" | "x86_64"
    jetpack: str | None
    tensorrt: str
    cuda: str
    sm: tuple[int, ...]
    devices: tuple[str, ...]
    workspace_mib: int

    @property
    def cuda_architectures(self) -> str:
        """``87;110``: the CMake list form."""
        return ";".join(str(s) for s in self.sm)

    def to_dict(self) -> dict:
        """JSON form for ``bundle.json`` (tuples as lists)."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


TARGETS: dict[str, DeployTarget] = {
    t.name: t
    for t in (
        DeployTarget(
            "jetson-orin-jp6",
            "jetson",
            "6.x",
            "10.3",
            "12.6",
            (87,),
            ("Jetson AGX Orin", "Jetson Orin NX", "Jetson Orin Nano"),
            workspace_mib=1024,
        ),
        DeployTarget(
            "jetson-jp7",
            "jetson",
            "7.2.2+",
            "11.4.1",
            "13.0",
            (87, 110),
            ("Jetson AGX Orin", "Jetson Orin NX", "Jetson Orin Nano", "Jetson AGX Thor"),
            workspace_mib=1024,
        ),
        DeployTarget(
            "x86-trt10", "x86_64", None, "10.3", "12.6", (80, 86, 89, 90), ("x86 + NVIDIA GPU",), 0
        ),
        DeployTarget(
            "x86-trt11",
            "x86_64",
            None,
            "11.4.1",
            "13.0",
            (80, 86, 89, 90, 100, 120),
            ("x86 + NVIDIA GPU",),
            0,
        ),
    )
}


def get_target(name: str) -> DeployTarget:
    """The target named ``name``; ConfigError listing the known ones otherwise."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}; known: {', '.join(TARGETS)}") from None
