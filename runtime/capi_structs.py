"""The structs of ``runtime/cpp/include/pomrt.h`` as ctypes mirrors (``runtime/capi.py``).

Field order, types and sizes must match the header: the C side reads ``struct_size`` first
and fills only the fields it knows, so a struct only ever grows at its end.
"""

from __future__ import annotations

import ctypes

__all__ = ["DecoderInfo", "Info", "ModelInfo", "Options", "RgbInfo"]


class Options(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("slots", ctypes.c_int32),
        ("steps", ctypes.c_int32),
        ("cfg_scale", ctypes.c_float),
        ("shift", ctypes.c_float),
        ("device", ctypes.c_int32),
        ("prefer_plugin", ctypes.c_int32),
        ("plugin_path", ctypes.c_char_p),
        ("plugin_sha256", ctypes.c_char_p),
        ("engine_path", ctypes.c_char_p),
        ("build_if_missing", ctypes.c_int32),
        ("workspace_bytes", ctypes.c_uint64),
        ("verbose", ctypes.c_int32),
    ]


class Info(ctypes.Structure):
    """A struct_size-first info struct read back as a dict (char arrays as str)."""

    def as_dict(self) -> dict:
        out = {name: getattr(self, name) for name, _ in self._fields_[1:]}
        return {k: v.decode() if isinstance(v, bytes) else v for k, v in out.items()}


class ModelInfo(Info):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        *[
            (name, ctypes.c_int32)
            for name in (
                "in_channels",
                "height",
                "width",
                "depth",
                "state_width",
                "tokens_per_frame",
                "num_classes",
                "batch_min",
                "batch_opt",
                "batch_max",
                "video",
                "slots",
                "rows",
            )
        ],
        ("precision", ctypes.c_char * 8),
        ("variant", ctypes.c_char * 16),
        ("model_name", ctypes.c_char * 64),
    ]


class DecoderInfo(Info):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        *[
            (name, ctypes.c_int32)
            for name in (
                "has_decoder",
                "streaming",
                "latent_channels",
                "latent_height",
                "latent_width",
                "rgb_height",
                "rgb_width",
                "frames_first",
                "frames_next",
                "cache_tensors",
            )
        ],
        ("cache_floats", ctypes.c_int64),
        ("kind", ctypes.c_char * 16),
        ("precision", ctypes.c_char * 8),
        ("source_class", ctypes.c_char * 32),
    ]


class RgbInfo(Info):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        *[
            (name, ctypes.c_int32)
            for name in ("decodes", "channels", "height", "width", "frames_first", "frames_next")
        ],
        ("reason", ctypes.c_char * 256),
    ]
