"""ctypes binding of the C++ runtime's C API (``runtime/cpp/include/pomrt.h``, ``libpomrt.so``).

The CPU-only entry points (artifact verification, the sampler schedule, the frame noise) work
in any build; :class:`CppRuntime` (frame generation) needs a library built with TensorRT
(``POMRT_WITH_TENSORRT=ON``) on a GPU machine.

>>> lib = load_library()                      # $POMRT_LIBRARY, then the default build folders
>>> lib.verify_artifact("out/tiny-fp16")      # ArtifactError naming the bad file, if any
>>> with CppRuntime(lib, "out/tiny-fp16", steps=20, cfg_scale=2.0) as rt:
...     rt.reset_stream(0, seed=0, label=3)
...     frame = rt.next_frame(0)              # (C_in, H, W) float32

Build the library with ``build_library(build_dir)`` (cmake) or by hand:
``cmake -S runtime/cpp -B build/pomrt && cmake --build build/pomrt``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from pomexport.errors import (
    ArtifactError,
    BuildError,
    ConfigError,
    PluginError,
    PomExportError,
    StateError,
)
from pomexport.runtime.capi_structs import DecoderInfo, ModelInfo, Options, RgbInfo

log = logging.getLogger(__name__)

ENV_VAR = "POMRT_LIBRARY"
SOURCE_DIR = Path(__file__).resolve().parent / "cpp"
_REPO = Path(__file__).resolve().parent.parent
DEFAULT_LOCATIONS = (
    SOURCE_DIR / "build" / "libpomrt.so",
    _REPO / "build" / "pomrt" / "libpomrt.so",
)

# pomrt_status -> the PomExportError subclass the binding raises for it.
_ERRORS: dict[int, type[PomExportError]] = {
    1: ConfigError,  # INVALID_ARGUMENT
    2: ArtifactError,
    3: StateError,
    4: ConfigError,  # BUFFER_TOO_SMALL
    5: BuildError,  # UNSUPPORTED (no TensorRT in this build)
    6: PluginError,
    7: BuildError,  # TENSORRT
    8: BuildError,  # CUDA
    9: PomExportError,  # INTERNAL
}


def find_library(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$POMRT_LIBRARY``, else the first default build location that exists."""
    candidates = [Path(p) for p in (path, os.environ.get(ENV_VAR)) if p]
    candidates += list(DEFAULT_LOCATIONS) if not candidates else []
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise BuildError(
        f"libpomrt.so not found (tried {tried}); build it with "
        f"`cmake -S {SOURCE_DIR} -B build/pomrt && cmake --build build/pomrt` "
        f"or point {ENV_VAR} at it"
    )


def build_library(
    build_dir: str | os.PathLike,
    with_tensorrt: bool | None = False,
    jobs: int = 2,
    examples: bool = False,
    build_type: str = "Release",
) -> Path:
    """Configure and build ``runtime/cpp`` with cmake into ``build_dir``; returns the .so path.

    ``with_tensorrt=None`` lets CMake decide (ON when TensorRT and CUDA are found);
    ``build_type="None"`` (no optimisation, no debug info) compiles fastest (the tests use it).
    """
    if shutil.which("cmake") is None:
        raise BuildError("cmake not found: install cmake and a C++17 compiler to build libpomrt")
    build_dir = Path(build_dir)
    configure = [
        "cmake",
        "-S",
        str(SOURCE_DIR),
        "-B",
        str(build_dir),
        f"-DCMAKE_BUILD_TYPE={build_type}",
    ]
    configure.append(f"-DPOMRT_BUILD_EXAMPLES={'ON' if examples else 'OFF'}")
    if with_tensorrt is not None:
        configure.append(f"-DPOMRT_WITH_TENSORRT={'ON' if with_tensorrt else 'OFF'}")
    for command in (configure, ["cmake", "--build", str(build_dir), "-j", str(jobs)]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise BuildError(f"{' '.join(command[:2])} failed:\n{tail}")
    return build_dir / "libpomrt.so"


class PomRT:
    """The loaded library: CPU entry points as Python functions raising PomExportError."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = find_library(path)
        try:
            self._lib = ctypes.CDLL(str(self.path))
        except OSError as e:
            raise BuildError(f"{self.path}: cannot load ({e})") from e
        self._declare()

    def _declare(self) -> None:
        lib, c = self._lib, ctypes
        status, char_p = c.c_int, c.c_char_p
        fptr = c.POINTER(c.c_float)
        signatures = {
            "pomrt_last_error": (char_p, []),
            "pomrt_version": (char_p, []),
            "pomrt_has_tensorrt": (c.c_int32, []),
            "pomrt_verify_artifact": (status, [char_p, char_p, c.c_size_t]),
            "pomrt_artifact_info": (status, [char_p, c.POINTER(ModelInfo)]),
            "pomrt_artifact_decoder": (status, [char_p, c.POINTER(DecoderInfo)]),
            "pomrt_artifact_decoder_engine": (
                status,
                [char_p, char_p, char_p, char_p, c.c_int32, char_p, c.c_size_t],
            ),
            "pomrt_decode_info": (status, [c.c_void_p, c.POINTER(RgbInfo)]),
            "pomrt_next_rgb": (
                status,
                [c.c_void_p, c.c_int32, fptr, c.c_size_t, c.POINTER(c.c_int32)],
            ),
            "pomrt_schedule": (status, [c.c_int32, c.c_float, fptr]),
            "pomrt_noise": (status, [c.c_uint64, c.c_uint64, c.c_uint64, c.c_size_t, fptr]),
            "pomrt_default_options": (None, [c.POINTER(Options)]),
            "pomrt_create": (status, [char_p, c.POINTER(Options), c.POINTER(c.c_void_p)]),
            "pomrt_info": (status, [c.c_void_p, c.POINTER(ModelInfo)]),
            "pomrt_reset_stream": (status, [c.c_void_p, c.c_int32, c.c_uint64, c.c_int32]),
            "pomrt_next_frame": (status, [c.c_void_p, c.c_int32, fptr, c.c_size_t]),
            "pomrt_destroy": (None, [c.c_void_p]),
            "pomrt_plugin_load": (status, [char_p, char_p, c.POINTER(c.c_void_p)]),
            "pomrt_plugin_reused": (c.c_int32, [c.c_void_p]),
            "pomrt_plugin_release": (None, [c.c_void_p]),
            "pomrt_plugins_loaded": (c.c_int32, []),
        }
        for name, (restype, argtypes) in signatures.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes

    def call(self, name: str, *args) -> None:
        """Call a status-returning function; a non-zero status raises its PomExportError."""
        code = getattr(self._lib, name)(*args)
        if code != 0:
            message = self._lib.pomrt_last_error().decode(errors="replace")
            raise _ERRORS.get(code, PomExportError)(message)

    @property
    def version(self) -> str:
        return self._lib.pomrt_version().decode()

    @property
    def has_tensorrt(self) -> bool:
        """Whether the library was built with the TensorRT runtime part."""
        return bool(self._lib.pomrt_has_tensorrt())

    def verify_artifact(self, artifact_dir: str | os.PathLike) -> None:
        """Raise ArtifactError (naming the file) unless the artifact is intact and safe."""
        err = ctypes.create_string_buffer(1024)
        self.call("pomrt_verify_artifact", os.fsencode(artifact_dir), err, len(err))

    def artifact_info(self, artifact_dir: str | os.PathLike) -> dict:
        """Verify, then the model facts the C++ side read from the manifest."""
        info = ModelInfo(struct_size=ctypes.sizeof(ModelInfo))
        self.call("pomrt_artifact_info", os.fsencode(artifact_dir), ctypes.byref(info))
        return info.as_dict()

    def artifact_decoder(self, artifact_dir: str | os.PathLike) -> dict | None:
        """Verify, then the decoder stage the C++ side read from the manifest (None: none)."""
        info = DecoderInfo(struct_size=ctypes.sizeof(DecoderInfo))
        self.call("pomrt_artifact_decoder", os.fsencode(artifact_dir), ctypes.byref(info))
        if not info.has_decoder:
            return None
        return info.as_dict()

    def artifact_decoder_engine(
        self, artifact_dir: str | os.PathLike, role: str, trt_version: str, gpu_name: str, sm: int
    ) -> str:
        """The decoder plan a TensorRT runtime on that target runs for ``role``; BuildError
        (UNSUPPORTED) naming the plan and why when there is none."""
        plan = ctypes.create_string_buffer(512)
        args = (role.encode(), trt_version.encode(), gpu_name.encode(), sm, plan, len(plan))
        self.call("pomrt_artifact_decoder_engine", os.fsencode(artifact_dir), *args)
        return plan.value.decode()

    def schedule(self, steps: int, shift: float = 1.0) -> np.ndarray:
        """(steps + 1,) float32 times from 1 to 0, computed by the C++ sampler."""
        out = np.empty(max(steps, 0) + 1, dtype=np.float32)
        self.call("pomrt_schedule", steps, shift, _float_ptr(out))
        return out

    def noise(self, seed: int, stream: int, frame: int, shape: tuple[int, ...]) -> np.ndarray:
        """The C++ runtime's initial noise of one frame (not numpy's: see runtime/cpp/README)."""
        out = np.empty(shape, dtype=np.float32)
        self.call("pomrt_noise", seed, stream, frame, out.size, _float_ptr(out))
        return out

    def load_plugin(self, path: str | os.PathLike, sha256: str) -> PluginUse:
        """Verify and load the PolyMixer plugin library once per process (``pomrt_plugin_load``):
        a library pomrt already loaded (same sha256) is shared, not loaded again."""
        handle = ctypes.c_void_p()
        self.call("pomrt_plugin_load", os.fsencode(path), sha256.encode(), ctypes.byref(handle))
        return PluginUse(self, handle)

    @property
    def plugins_loaded(self) -> int:
        """Plugin libraries loaded through pomrt in this process, each counted once."""
        return int(self._lib.pomrt_plugins_loaded())


class PluginUse:
    """One ``pomrt_plugin`` handle; the library is unloaded with the last one released."""

    def __init__(self, lib: PomRT, handle: ctypes.c_void_p) -> None:
        self.lib, self._handle = lib, handle
        self.reused = bool(lib._lib.pomrt_plugin_reused(handle))

    def release(self) -> None:
        if getattr(self, "_handle", None):
            self.lib._lib.pomrt_plugin_release(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self) -> PluginUse:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _float_ptr(array: np.ndarray):
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class CppRuntime:
    """One ``pomrt_runtime`` handle: TensorRT engine, device state, frame loop (GPU only)."""

    def __init__(
        self,
        lib: PomRT,
        artifact_dir: str | os.PathLike,
        slots: int = 1,
        steps: int = 20,
        cfg_scale: float = 2.0,
        shift: float = 1.0,
        device: int = 0,
        plugin_path: str | None = None,
        plugin_sha256: str | None = None,
        workspace_bytes: int = 0,
    ) -> None:
        self.lib = lib
        options = Options()
        lib._lib.pomrt_default_options(ctypes.byref(options))
        options.slots, options.steps, options.device = slots, steps, device
        options.cfg_scale, options.shift, options.workspace_bytes = (
            cfg_scale,
            shift,
            workspace_bytes,
        )
        options.plugin_path = plugin_path.encode() if plugin_path else None
        options.plugin_sha256 = plugin_sha256.encode() if plugin_sha256 else None
        self._handle = ctypes.c_void_p()
        lib.call(
            "pomrt_create",
            os.fsencode(artifact_dir),
            ctypes.byref(options),
            ctypes.byref(self._handle),
        )
        info = ModelInfo(struct_size=ctypes.sizeof(ModelInfo))
        lib.call("pomrt_info", self._handle, ctypes.byref(info))
        self.info = info.as_dict()

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return self.info["in_channels"], self.info["height"], self.info["width"]

    def reset_stream(self, slot: int, seed: int = 0, label: int = 0) -> None:
        """Start a stream in ``slot`` (label < 0 frees it)."""
        self.lib.call("pomrt_reset_stream", self._handle, slot, seed, label)

    def next_frame(self, slot: int) -> np.ndarray:
        """The slot's next frame, (C_in, H, W) float32."""
        out = np.empty(self.frame_shape, dtype=np.float32)
        self.lib.call("pomrt_next_frame", self._handle, slot, _float_ptr(out), out.nbytes)
        return out

    def decode_info(self) -> dict:
        """Whether this runtime decodes (``decodes``, else ``reason``) and the RGB frame shape."""
        info = RgbInfo(struct_size=ctypes.sizeof(RgbInfo))
        self.lib.call("pomrt_decode_info", self._handle, ctypes.byref(info))
        return info.as_dict()

    def next_rgb(self, slot: int) -> np.ndarray:
        """The slot's next decoded RGB frames, (n, 3, H, W) float32 (all queued, n >= 1)."""
        info = self.decode_info()
        if not info["decodes"]:
            raise BuildError(f"this runtime does not decode: {info['reason']}")
        most = max(info["frames_first"], info["frames_next"])
        out = np.empty((most, 3, info["height"], info["width"]), dtype=np.float32)
        written = ctypes.c_int32(0)
        args = (slot, _float_ptr(out), out.nbytes, ctypes.byref(written))
        self.lib.call("pomrt_next_rgb", self._handle, *args)
        return out[: written.value]

    def close(self) -> None:
        if getattr(self, "_handle", None):
            self.lib._lib.pomrt_destroy(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self) -> CppRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def load_library(path: str | os.PathLike | None = None) -> PomRT:
    """The library at ``path`` / ``$POMRT_LIBRARY`` / the default build folder, loaded."""
    return PomRT(path)
