"""The artifact directory's names and vocabulary (docs/design.md §6): what every reader and writer
spells the same way, importable with nothing but the standard library.

```
<out>/manifest.json      model config, IO contract, precision, variant, sha256 of every file
<out>/model.onnx         portable flavor (+ model.onnx.data when over 2 GB)
<out>/model.plugin.onnx  plugin flavor
<out>/engines/<gpu>-sm<NN>-trt<ver>.plan
<out>/timing.cache
<out>/plugins/libpomexport_plugins.so   (optional: the PolyMixer plugin library)
<out>/decoder/<role>.onnx                (optional: the latent decoder stage, decoder.py)
```
"""

from __future__ import annotations

MANIFEST = "manifest.json"
DEVICE = "device.json"  # files built on the device, beside the manifest (device.py)
DEVICE_SIGNATURE = "device.sig"
PORTABLE = "model.onnx"
PLUGIN = "model.plugin.onnx"
ENGINES = "engines"
TIMING_CACHE = "timing.cache"
PLUGINS = "plugins"  # plugin libraries: hashed like every file, verified again before dlopen
DECODER_DIR = "decoder"  # the optional latent decoder's graphs (export/artifact/decoder.py)
FORMAT = "pomexport-artifact"
FORMAT_VERSION = 1
FLAVOR_FILES = {"portable": PORTABLE, "plugin": PLUGIN}
MODEL_DTYPES = {"fp32": "float32", "fp16": "float16"}
# What `pomexport build --precision` accepts: int8 is an fp32 export + calibration.
PRECISIONS = ("fp32", "fp16", "int8")
# The int8 calibrators (calibration/calibrators.py), recorded in the manifest's quantization.
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
