"""Option values the CLI lists without importing torch (``pomexport --help`` stays fast)."""

SAMPLERS = ("euler", "heun")
# torch runs a model (name, preset or weights); the ort* backends run a built artifact:
# ort = ONNX Runtime CPU EP, ort-cuda = CUDA EP, ort-trt = TensorRT EP (runtime/providers.py).
BACKENDS = ("torch", "ort", "ort-cuda", "ort-trt")
ORT_BACKENDS = ("ort", "ort-cuda", "ort-trt")
DEVICES = ("auto", "cpu", "cuda")
